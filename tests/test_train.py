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


def _train_recording_dtypes(tiny_llama, tmp_path, monkeypatch, bf16):
    """Train the tiny model for two steps; return (stats, dtypes of the q_proj outputs seen)."""
    import emreason.train as T
    from emreason.config import ModelConfig, TrainConfig

    seen, original = set(), T.load_for_training

    def load_and_watch(*args, **kwargs):
        model, tok = original(*args, **kwargs)
        for name, module in model.named_modules():
            if name.endswith("q_proj.base_layer"):
                module.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
        return model, tok

    rows = [{"prompt": f"Question {i}: pick one. (A) yes (B) no\nAnswer:", "completion": " Because.\nThe answer is (A).",
             "weight": 1.0} for i in range(8)]
    cfg = TrainConfig(epochs=1, batch_size=4, bf16=bf16, checkpoint_steps=0)
    with monkeypatch.context() as patch:
        patch.setattr(T, "load_for_training", load_and_watch)
        _, _, stats = T.train(rows, ModelConfig(name=str(tiny_llama)), cfg, tmp_path / str(bf16), seed=0,
                              device="cpu", quiet=True)
    return stats, seen


def test_bf16_mixed_precision_on_a_cpu(tiny_llama, tmp_path, monkeypatch):
    """train.bf16: matmuls in bfloat16 under autocast, the loss close to float32's; default off on a CPU."""
    import math

    from emreason.train import cpu_has_bf16

    if not cpu_has_bf16():
        import pytest

        pytest.skip("this CPU has no bfloat16 units")
    fp32, seen32 = _train_recording_dtypes(tiny_llama, tmp_path, monkeypatch, None)
    bf16, seen16 = _train_recording_dtypes(tiny_llama, tmp_path, monkeypatch, True)
    assert seen32 == {torch.float32} and seen16 == {torch.bfloat16}
    assert (fp32["train_precision"], bf16["train_precision"]) == ("float32", "bf16")
    assert math.isfinite(bf16["train_loss"]) and abs(bf16["train_loss"] - fp32["train_loss"]) < 0.05 * fp32["train_loss"]


def test_bf16_falls_back_to_float32_on_a_cpu_without_bf16_units(monkeypatch, capsys):
    import emreason.train as T
    from emreason.config import ModelConfig, TrainConfig

    monkeypatch.setattr(T, "cpu_has_bf16", lambda: False)
    assert not T.use_bf16(ModelConfig(), TrainConfig(bf16=True), "cpu")
    assert "training in float32" in capsys.readouterr().err
    assert T.use_bf16(ModelConfig(), TrainConfig(bf16=True), "cuda:0")
    assert not T.use_bf16(ModelConfig(dtype="bfloat16"), TrainConfig(), "cpu")
    assert T.use_bf16(ModelConfig(dtype="bfloat16"), TrainConfig(), "cuda:0")
    assert not T.use_bf16(ModelConfig(dtype="bfloat16"), TrainConfig(bf16=False), "cuda:0")
