import math

import pytest

from emreason.data import Example
from emreason.evaluate import evaluate, mcnemar, summarize, wilson_interval

from fakes import ScriptedBackend


def _examples(n=10):
    return [Example(f"q{i}", f"Question {i}?", (("A", "aa"), ("B", "b"), ("C", "cccc"), ("D", "dd")),
                    "ABCD"[i % 4], "t") for i in range(n)]


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert math.isclose(lo, 0.4038, abs_tol=1e-3) and math.isclose(hi, 0.5962, abs_tol=1e-3)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17


def test_cot_eval_counts_unparseable_as_wrong():
    exs = _examples(8)
    answers = iter(["The answer is (A).", "The answer is (B).", "no idea", "The answer is (A).",
                    "The answer is (A).", "(B) hmm. The answer is (C).", "The answer is (C).", "The answer is (D)."])
    backend = ScriptedBackend(lambda p, j, c: next(answers))
    r = evaluate(backend, exs, "cot")
    m = r.metrics
    assert m["n"] == 8 and m["correct"] == 5 and m["accuracy"] == 5 / 8
    assert m["parse_rate"] == 6 / 8
    assert m["pred_distribution"] == {"A": 3, "B": 1, "C": 1, "D": 1, "none": 2}
    assert m["ci_low"] < 5 / 8 < m["ci_high"]
    assert [x["correct"] for x in r.records] == [True, True, False, False, True, False, True, True]
    assert "step by step" in r.records[0]["prompt"]
    assert backend.calls[0][1].temperature == 0.0


def test_loglik_picks_the_most_likely_choice():
    r = evaluate(ScriptedBackend(None), _examples(4), "loglik")
    # the fake scores -len(text): "b" (B) always wins raw; "aa"/"dd"/"b" per char: all -1 -> first max, A
    assert [x["pred"] for x in r.records] == ["B"] * 4
    assert r.metrics["accuracy"] == 0.25 and "accuracy_norm" in r.metrics


def test_mcnemar_paired():
    a = [True] * 10 + [False] * 10
    b = [True] * 10 + [True] * 8 + [False] * 2
    t = mcnemar(a, b)
    assert t["only_a"] == 0 and t["only_b"] == 8
    assert t["p_value"] == pytest.approx(2 * 0.5 ** 8)
    assert t["diff"] == pytest.approx(0.4) and t["diff_ci_low"] > 0
    assert mcnemar(a, a)["p_value"] == 1.0
    with pytest.raises(ValueError):
        mcnemar(a, a[:3])


def test_summarize_empty():
    assert summarize([])["n"] == 0
