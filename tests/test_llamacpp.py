"""The llama.cpp backend: its sampler draws from the same distribution as transformers' (unit test),
and on the real smollm2-135m it computes the same model as the transformers backend, LoRA iterate
included (integration tests on the float32 GGUF: the same weights, so differences are rounding)."""

import json

import numpy as np
import pytest
from scipy import stats

from emreason.backends.llamacpp import _sample


def test_sampler_draws_softmax_within_top_p():
    rng = np.random.default_rng(0)
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    temperature, top_p = 0.7, 0.9
    p = np.exp(logits / temperature)
    p /= p.sum()
    keep = np.cumsum(p) - p < top_p  # sorted already: a token stays while the mass before it is < top_p
    expected = np.where(keep, p, 0) / p[keep].sum()
    draws = np.bincount([_sample(logits, temperature, top_p, rng) for _ in range(20000)], minlength=len(p))
    assert draws[~keep].sum() == 0
    assert stats.chisquare(draws[keep], expected[keep] * draws.sum()).pvalue > 1e-3
    assert _sample(logits, 0.0, 1.0, rng) == 0


@pytest.fixture(scope="module")
def engines():
    from emreason.backends import open_backend
    from emreason.config import BackendConfig, ModelConfig

    m = ModelConfig(name="smollm2-135m")
    return (open_backend(BackendConfig(name="hf"), m, batch_size=4),
            open_backend(BackendConfig(name="llamacpp"), m, batch_size=4))


PROMPTS = ["Which gas do plants take in from the air? (A) oxygen (B) carbon dioxide",
           "What makes a magnet stick to a fridge door? (A) magnetism (B) glue (C) gravity",
           "Which is a renewable source of energy? (A) coal (B) oil (C) wind (D) natural gas"]


@pytest.mark.integration
def test_next_token_distributions_agree(engines):
    import torch

    hf, lc = engines
    text = hf.chat(PROMPTS[0]) + " Plants take in carbon dioxide through their leaves. The answer is (B)"
    ids = hf.tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        a = torch.log_softmax(hf.model(torch.tensor([ids])).logits[0].double(), -1).numpy()
    b = lc.logits(ids).astype(np.float64)
    b -= b.max(-1, keepdims=True)
    b -= np.log(np.exp(b).sum(-1, keepdims=True))
    kl = (np.exp(a) * (a - b)).sum(-1)  # KL(transformers || llama.cpp) at each of the 60+ positions
    # Same float32 weights: measured mean 1.5e-6 nats, max 2.3e-5, the same top token everywhere
    # (the Q4_1 file itself gives mean 0.005, max 0.04; a wrong tensor layout gives several nats).
    assert kl.mean() < 1e-4 and kl.max() < 1e-3, (kl.mean(), kl.max())
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.98


@pytest.mark.integration
def test_lora_iterate_on_the_gguf_matches_transformers(engines, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from emreason.backends import open_backend
    from emreason.config import BackendConfig, ModelConfig
    from emreason.models import load

    model, _ = load("smollm2-135m")
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                  init_lora_weights=False))  # random B: a visible change
    peft_model.save_pretrained(tmp_path / "adapter")
    m = ModelConfig(name="smollm2-135m")
    hf_base, lc = engines
    hf = open_backend(BackendConfig(name="hf"), m, tmp_path / "adapter")
    ctx = hf.chat(PROMPTS[0])
    cont = " Plants take in carbon dioxide through their leaves. The answer is (B)"
    base = hf_base.loglik([(ctx, cont)])[0]
    lc.set_iterate(tmp_path / "adapter")
    try:
        tuned_hf, tuned_lc = hf.loglik([(ctx, cont)])[0], lc.loglik([(ctx, cont)])[0]
    finally:
        lc.set_iterate(None)
    assert abs(tuned_hf - base) > 5  # the adapter moves the model a lot ...
    assert abs(tuned_lc - tuned_hf) < 0.5  # ... and llama.cpp moves it the same way (q/k rows permuted right)
    assert (tmp_path / "adapter" / "adapter.gguf").is_file()
    assert lc.loglik([(ctx, cont)])[0] == pytest.approx(engines[1].loglik([(ctx, cont)])[0])  # back on the base


@pytest.mark.integration
def test_batched_sequences_stay_apart_and_samples_reproduce(engines):
    from emreason.backends import SamplingParams

    hf, lc = engines
    prompts = [hf.chat(q) for q in PROMPTS]
    greedy = SamplingParams(n=1, temperature=0, max_new_tokens=32)
    lc.batch_size = 6
    together = lc.generate(prompts, greedy)
    lc.batch_size = 1
    alone = [lc.generate([p], greedy)[0] for p in prompts]
    assert together == alone  # sequences decoded together never see each other's tokens
    lc.batch_size = 6
    params = SamplingParams(n=2, temperature=0.7, max_new_tokens=24, seed=3)
    first = lc.generate(prompts, params)
    assert [len(g) for g in first] == [2, 2, 2]
    assert first[0][0].text != first[0][1].text  # two samples of one prompt differ
    assert lc.generate(prompts, params) == first  # the same call draws the same samples
    lc.batch_size = 4


@pytest.mark.integration
def test_run_with_llamacpp_backend(data_dir, tmp_path):
    from emreason import loop
    from emreason.config import RunConfig

    # Filters off: hinted samples that name the right letter are accepted, so the M-step surely runs.
    cfg = RunConfig.model_validate({
        "iterations": 1, "model": {"name": "smollm2-135m"}, "backend": {"name": "llamacpp"},
        "data": {"dataset": "arc_easy", "data_dir": str(data_dir), "train_size": 6, "eval_size": 4},
        "sampler": {"name": "pps", "filters": {"hint_leak": False, "answer_first": False, "min_rationale_words": 0}},
        "generation": {"max_new_tokens": 48, "batch_size": 6},
        "train": {"epochs": 1, "lora_r": 4}, "eval": {"max_new_tokens": 32}})
    rows = loop.run(cfg, tmp_path / "run", quiet=True)
    assert [r["iteration"] for r in rows] == [0, 1]
    records = [json.loads(x) for x in (tmp_path / "run" / "iter_1" / "samples.jsonl").read_text().splitlines()]
    assert sum("text" in r for r in records) == 6
    assert rows[1]["train_examples"] > 0
    assert (tmp_path / "run" / "iter_1" / "model" / "adapter.gguf").is_file()  # the iterate ran on llama.cpp
