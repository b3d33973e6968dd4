"""The M-step's loss: reward-weighted completion-only NLL, with prompt logits never computed."""

import torch
import torch.nn.functional as F

from emreason.models import load
from emreason.train import _Collator, tokenize, weighted_nll


def _reference(model, batch):
    """The loss the long way: logits at every position, prompt tokens masked by their labels."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100,
                         reduction="none").view(target.shape)
    tokens = target != -100
    return (ce * tokens * batch["weight"][:, None]).sum() / tokens.sum()


def test_loss_with_trimmed_logits_equals_the_full_computation(tiny_llama):
    model, tok = load(str(tiny_llama), "float32", "cpu")
    rows = [{"prompt": "Question: why is the sky blue? Choices: (A) light (B) dust\nAnswer:" + " x" * n,
             "completion": " Light scatters.\nThe answer is (A).", "weight": w} for n, w in ((0, 1.0), (9, 0.5), (3, 2.0))]
    examples, dropped = tokenize(rows, tok, 512)
    assert dropped == 0
    batch = _Collator(tok.pad_token_id or 0)(examples)
    expected = _reference(model, batch)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    loss, out = weighted_nll(model, inputs, batch["labels"], batch["weight"])
    shortest_prompt = min(len(tok(r["prompt"], add_special_tokens=False)["input_ids"]) for r in rows)
    assert out.logits.shape[1] == batch["input_ids"].shape[1] - shortest_prompt + 1  # prompt logits skipped
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()  # and it trains: gradients reach the weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_an_mstep_resumes_only_from_a_complete_checkpoint_of_itself(tmp_path):
    """Resume from the newest checkpoint with our marker (written last) and the same fingerprint;
    a half-written one or one of another M-step (other rows or config) is passed over."""
    import json

    from emreason.train import RESUME_MARKER, _resumable_checkpoint

    logs = tmp_path / "logs"
    for step, fp in ((3, "this"), (6, "this"), (9, None), (12, "other")):
        (logs / f"checkpoint-{step}").mkdir(parents=True)
        if fp:
            (logs / f"checkpoint-{step}" / RESUME_MARKER).write_text(json.dumps({"fingerprint": fp, "loss_sum": step}))
    ckpt, saved = _resumable_checkpoint(logs, "this")
    assert ckpt.name == "checkpoint-6" and saved["loss_sum"] == 6
    assert _resumable_checkpoint(logs, "new") == (None, {})
    assert _resumable_checkpoint(tmp_path / "none", "this") == (None, {})
