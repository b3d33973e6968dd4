"""Each sampler's semantics, pinned with a scripted backend: which prompt each attempt used, budget
accounting, rationalization only after a failure, acceptance only on the correct answer, filters,
and that a training example never contains the hint."""

import re

import pytest

from emreason import prompts as P
from emreason.config import FilterConfig, GenerationConfig, PromptConfig, SamplerConfig
from emreason.data import Example
from emreason.samplers import (HINT_LEAK_RE, estep_summary, present, reject_reason, sample_chunk,
                               split_rationale, target_text, training_examples)

from fakes import ScriptedBackend

GOOD = "Plants need light to make food by photosynthesis, and the rest do not help them grow at all."


def _ex(i, answer="B"):
    return Example(f"q{i}", f"Question number {i}?", (("A", "sand"), ("B", "light"), ("C", "noise"), ("D", "dark")),
                   answer, "t")


def _hinted(prompt):
    return "The correct answer is (" in prompt


def _gold(prompt):
    return re.search(r"The correct answer is \((\w)\)", prompt).group(1)


def run(sampler, respond, exs=None, **filters):
    backend = ScriptedBackend(respond)
    cfg = SamplerConfig(name=sampler, filters=FilterConfig(**filters), k=3, keep=1)
    recs = sample_chunk(backend, exs or [_ex(0), _ex(1)], cfg, GenerationConfig(), PromptConfig(), seed=0,
                        iteration=1, chunk=0)
    return backend, recs, cfg


def test_rejection_stops_at_first_correct_and_never_hints():
    # q0 is right on the 2nd draw; q1 is never right: it uses the whole budget k=3
    def respond(prompt, j, call):
        assert not _hinted(prompt)
        if "number 0" in prompt and call == 1:
            return f"{GOOD}\nThe answer is (B)."
        return f"{GOOD}\nThe answer is (A)."
    backend, recs, _ = run("rejection", respond)
    per_q = {q: [r for r in recs if r["question_id"] == q] for q in ("q0", "q1")}
    assert [r["accepted"] for r in per_q["q0"]] == [False, True]
    assert [r["accepted"] for r in per_q["q1"]] == [False, False, False]
    assert [len(p) for p, _ in backend.calls] == [2, 2, 1]  # q0 is not sampled after acceptance
    assert all(r["stage"] == "plain" and not r["hinted"] for r in recs)
    assert {r["reject"] for r in per_q["q1"]} == {"wrong"}


def test_rejection_keep_m_as_rest_em():
    backend = ScriptedBackend(lambda p, j, c: f"{GOOD}\nThe answer is (B).")
    cfg = SamplerConfig(name="rejection", k=4, keep=3)
    recs = sample_chunk(backend, [_ex(0)], cfg, GenerationConfig(), PromptConfig(), 0, 1, 0)
    assert len(recs) == 3 and all(r["accepted"] for r in recs)


def test_star_rationalizes_only_after_a_failure():
    # q0: right from the plain prompt. q1: wrong, then right with the hint.
    def respond(prompt, j, call):
        if _hinted(prompt):
            return f"{GOOD}\nThe answer is ({_gold(prompt)})."
        return f"{GOOD}\nThe answer is ({'B' if 'number 0' in prompt else 'C'})."
    backend, recs, _ = run("star", respond)
    assert [(r["question_id"], r["stage"], r["accepted"]) for r in recs] == [
        ("q0", "plain", True), ("q1", "plain", False), ("q1", "rationalize", True)]
    assert [(len(p), any(map(_hinted, p))) for p, _ in backend.calls] == [(2, False), (1, True)]


def test_pps_samples_only_with_the_hint():
    backend, recs, _ = run("pps", lambda p, j, c: f"{GOOD}\nThe answer is ({_gold(p)}).")
    assert all(_hinted(p) for prompts, _ in backend.calls for p in prompts)
    assert all(r["hinted"] and r["accepted"] and r["stage"] == "hinted" for r in recs)


def test_acceptance_only_on_the_correct_answer():
    backend, recs, _ = run("pps", lambda p, j, c: f"{GOOD}\nThe answer is (D).")
    assert not any(r["accepted"] for r in recs) and {r["reward"] for r in recs} == {0.0}
    backend, recs, _ = run("pps", lambda p, j, c: GOOD)
    assert {r["reject"] for r in recs} == {"no_answer"}


@pytest.mark.parametrize("text,reason", [
    (f"The correct answer is (B) because plants use it. {GOOD}\nThe answer is (B).", "hint_leak"),
    (f"As the hint says, light. {GOOD}\nThe answer is (B).", "hint_leak"),
    (f"(B) is the answer given by the user. {GOOD}\nThe answer is (B).", "hint_leak"),
    (f"The answer is the one you've been given. {GOOD}\nThe answer is (B).", "hint_leak"),
    (f"Step 1: B is already mentioned as the answer. {GOOD}\nThe answer is (B).", "hint_leak"),
    (f"(B) light. {GOOD}\nThe answer is (B).", "answer_first"),
    ("The answer is (B). " + GOOD, "answer_first"),
    ("Light helps plants grow and make food.\nThe answer is (B).", "too_short"),
    (f"{GOOD}\nThe answer is (B).", None),
    (f"{GOOD}\nTherefore, the correct answer is (B).", None),  # the final answer line is rewritten, not trained
])
def test_filters(text, reason):
    assert reject_reason(text, _ex(0), hinted=True, cfg=FilterConfig()) == reason


def test_filters_can_be_turned_off_and_leak_only_checks_hinted():
    text = f"{GOOD} So the correct answer is light.\nThe answer is (B)."
    assert reject_reason(text, _ex(0), hinted=True, cfg=FilterConfig()) == "hint_leak"
    assert reject_reason(text, _ex(0), hinted=False, cfg=FilterConfig()) is None
    assert reject_reason(text, _ex(0), hinted=True, cfg=FilterConfig(hint_leak=False)) is None
    assert reject_reason("(B) light.", _ex(0), True, FilterConfig(answer_first=False, min_rationale_words=0)) is None


def test_training_examples_never_contain_the_hint():
    backend, recs, cfg = run("pps", lambda p, j, c: f"{GOOD}\nso the answer is ({_gold(p)}) I think")
    shown = {e.id: e for e in (_ex(0), _ex(1))}
    rows = training_examples(recs, shown, backend, PromptConfig(), cfg)
    assert len(rows) == 2
    for row in rows:
        assert "correct answer is" not in row["prompt"] and not HINT_LEAK_RE.search(row["completion"])
        assert row["prompt"] == backend.chat(P.user_message(shown[row["question_id"]], "cot"))
        assert row["completion"] == f"{GOOD}\nThe answer is (B)."  # fixed form, trailing text dropped


def test_direct_targets_are_the_answer_line():
    backend = ScriptedBackend(None)
    rows = training_examples([], {"q0": _ex(0, "C")}, backend, PromptConfig(), SamplerConfig(name="direct"))
    assert rows[0]["completion"] == "The answer is (C)." and "Reply with only" in rows[0]["prompt"]


def test_shuffled_choices_follow_into_training():
    ex = present(_ex(0), seed=1, iteration=1, shuffle=True)
    assert present(_ex(0), 1, 1, True) == ex  # deterministic per (seed, iteration, id)
    backend, recs, cfg = run("pps", lambda p, j, c: f"{GOOD}\nThe answer is ({_gold(p)}).", exs=[ex])
    rows = training_examples(recs, {"q0": _ex(0)}, backend, PromptConfig(), cfg)
    assert rows[0]["prompt"] == backend.chat(P.user_message(ex, "cot"))
    assert rows[0]["completion"].endswith(f"({ex.answer_letter}).")


def test_split_rationale_and_target():
    ex = _ex(0)
    assert split_rationale("Light matters. Plants grow. So the answer is (B).", ex) == "Light matters. Plants grow."
    assert target_text("Light matters.\nThe answer is (B)", ex) == "Light matters.\nThe answer is (B)."
    assert target_text("\n\nLight matters. So the answer is (B) I think", ex) == "\n\nLight matters.\nThe answer is (B)."
    assert target_text("  (B)", ex) == "The answer is (B)."


def test_summary_counts():
    backend, recs, _ = run("star", lambda p, j, c: f"{GOOD}\nThe answer is ({_gold(p) if _hinted(p) else 'A'}).")
    s = estep_summary(recs, 2)
    assert s["attempts"] == 4 and s["accepted"] == 2 and s["accept_rate"] == 1.0
    assert s["accepted_by_stage"] == {"rationalize": 2} and s["rejects"] == {"wrong": 2}
    assert s["tokens_per_accepted"] == sum(r["tokens"] for r in recs) / 2
