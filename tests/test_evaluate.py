import gzip
import json
import math

import pytest

from emreason.data import Example
from emreason.cli import main
from emreason.evaluate import evaluate, mcnemar, reread, reread_samples, summarize, wilson_interval

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


def test_reread_reads_stored_outputs_again_and_rewrites_the_metrics(tmp_path, capsys):
    """A reader fix reaches finished evaluations without generating again: the stored predictions
    (kept compressed, as results/ commits them), the evaluation's metrics and metrics.jsonl."""
    qs = [{"id": "q1", "question": "2 + 2?", "choices": ["3", "4", "13"], "answer": "B"},
          {"id": "q2", "question": "6 + 7?", "choices": ["3", "4", "13"], "answer": "C"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qs))
    run = tmp_path / "run"
    ev = run / "iter_0" / "eval"
    ev.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": {"data": {
        "dataset": str(tmp_path / "{split}.jsonl"), "eval_split": "test", "train_split": "test", "data_dir": None}}}))
    # as an older reader left them: "(13)" read as the non-choice "13"
    records = [{"id": "q1", "output": "The answer is (B).", "pred": "B", "gold": "B", "correct": True,
                "tokens": 5, "truncated": False},
               {"id": "q2", "output": "The answer is (13).", "pred": "13", "gold": "C", "correct": False,
                "tokens": 6, "truncated": False}]
    (ev / "predictions.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    (ev / "metrics.json").write_text(json.dumps({**summarize(records), "seconds": 3.0, "mode": "cot"}))
    (run / "metrics.jsonl").write_text(json.dumps({"iteration": 0, "sampler": "none", "eval_accuracy": 0.5}) + "\n")

    assert reread(run, write=False) == [{"run": "run", "iteration": 0, "id": "q2", "old": "13", "new": "C", "gold": "C"}]
    assert json.loads((ev / "metrics.json").read_text())["accuracy"] == 0.5  # a dry run writes nothing

    assert main(["reread", str(run)]) == 0
    out = capsys.readouterr().out
    assert "q2: 13 -> C (gold C)" in out and "accuracy 0.500 -> 1.000" in out
    assert not (ev / "predictions.jsonl").exists()
    stored = [json.loads(l) for l in gzip.decompress((ev / "predictions.jsonl.gz").read_bytes()).splitlines()]
    assert [(r["pred"], r["correct"]) for r in stored] == [("B", True), ("C", True)]
    m = json.loads((ev / "metrics.json").read_text())
    assert m["accuracy"] == 1.0 and m["correct"] == 2 and m["seconds"] == 3.0 and m["mode"] == "cot"
    assert m["pred_distribution"] == {"B": 1, "C": 1}
    row = json.loads((run / "metrics.jsonl").read_text())
    assert row["eval_accuracy"] == 1.0 and row["sampler"] == "none"
    assert reread(run) == []  # read by the same rules, nothing left to change

    # E-step samples are only counted, never rewritten: a flip would mean another training set
    samples = [{"iteration": 1, "question_id": "q2", "text": "Adding up: the answer is 13.", "pred": "13",
                "gold": "C", "accepted": False},
               {"iteration": 1, "question_id": "q1", "text": "The answer is (A).", "pred": "A", "gold": "B",
                "accepted": False},
               {"chunk_done": 0, "questions": 2}]
    (run / "iter_1").mkdir()
    (run / "iter_1" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in samples))
    seen, changes = reread_samples(run)
    assert seen == 2 and [(c["id"], c["new"], c["flips"]) for c in changes] == [("q2", "C", True)]
    assert "13" in (run / "iter_1" / "samples.jsonl").read_text()
    assert main(["reread", str(run), "--dry-run"]) == 0
    assert "1 of 2 read differently, 1 of them between wrong and correct" in capsys.readouterr().out
