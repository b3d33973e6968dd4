import math

import pytest
import torch

from emreason.backends import SamplingParams
from emreason.backends.hf import HFBackend, _AnswerStop
from emreason.models import load


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def backend(request, tiny_llama, tiny_qwen):
    path = tiny_llama if request.param == "llama" else tiny_qwen
    model, tok = load(str(path))
    return HFBackend(model, tok, batch_size=4)


def test_generate_shapes_and_counts(backend):
    prompts = [backend.chat(f"question {i} " * (i + 1)) for i in range(5)]
    out = backend.generate(prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=1))
    assert len(out) == 5 and all(len(g) == 3 for g in out)
    for gens in out:
        for g in gens:
            assert 0 <= g.tokens <= 12
            assert g.truncated == (g.tokens == 12)


def test_same_seed_same_samples_and_seed_matters(backend):
    prompts = [backend.chat("Which is it?"), backend.chat("Another one, longer prompt here")]
    p = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=7)
    a = backend.generate(prompts, p)
    b = backend.generate(prompts, p)
    c = backend.generate(prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=8))
    assert a == b
    assert a != c


def test_greedy_is_batch_independent(backend):
    prompts = [backend.chat("short"), backend.chat("a much longer prompt " * 5), backend.chat("mid size prompt")]
    p = SamplingParams(n=1, temperature=0.0, max_new_tokens=8)
    together = [g[0].text for g in backend.generate(prompts, p)]
    alone = [backend.generate([q], p)[0][0].text for q in prompts]
    assert together == alone


def test_greedy_needs_n_1(backend):
    with pytest.raises(ValueError):
        backend.generate(["x"], SamplingParams(n=2, temperature=0.0))


def test_answer_stop_marks_rows_whose_answer_line_is_complete(backend):
    tok = backend.tok
    rows = ["so the answer is (B)", "still thinking about it", "The answer is C."]
    enc = tok(rows, return_tensors="pt", padding=True, add_special_tokens=False)
    stop = _AnswerStop(tok, prompt_len=0)
    assert stop(enc["input_ids"], None).tolist() == [True, False, True]


def test_loglik_matches_a_direct_computation(backend):
    ctx, cont = "Question: what? Answer:", " sunlight"
    (score,) = backend.loglik([(ctx, cont)])
    c = backend.tok(ctx)["input_ids"]
    k = backend.tok(cont, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([c + k])
    with torch.no_grad():
        logp = torch.log_softmax(backend.model(ids).logits.float(), -1)[0]
    expected = sum(logp[len(c) + i - 1, t].item() for i, t in enumerate(k))
    assert math.isclose(score, expected, rel_tol=1e-4, abs_tol=1e-4)
    batched = backend.loglik([(ctx, cont), ("Other context that is longer:", " x")])
    assert math.isclose(batched[0], score, rel_tol=1e-4, abs_tol=1e-4)


def test_out_of_memory_halves_the_batch(backend, monkeypatch):
    real = backend.model.generate
    sizes = []

    def tight(**kw):
        rows = kw["input_ids"].shape[0] * kw["num_return_sequences"]
        sizes.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError("simulated")
        return real(**kw)

    monkeypatch.setattr(backend.model, "generate", tight)
    prompts = [backend.chat(f"q{i}") for i in range(5)]
    out = backend.generate(prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=4))
    monkeypatch.setattr(backend.model, "generate", real)
    assert len(out) == 5 and all(len(g) == 1 for g in out)
    assert max(s for s in sizes if s <= 2) <= 2 and sizes[0] == 4
    assert [g[0].text for g in out] == [g[0].text for g in backend.generate(prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=4))]
