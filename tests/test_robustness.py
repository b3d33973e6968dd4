"""Untrusted input never crashes emreason: arbitrary files give examples or one clear error, and
arbitrary model output parses conservatively."""

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from emreason import data, prompts as P
from emreason.data import Example
from emreason.errors import EmreasonError
from emreason.samplers import reject_reason, split_rationale, target_text
from emreason.config import FilterConfig

EX = Example("q", "Which?", (("A", "red"), ("B", "green"), ("C", "blue"), ("D", "black")), "B", "t")

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c, max_size=5),
                           max_leaves=20)
row = st.fixed_dictionaries({}, optional={"id": json_values, "question": json_values, "choices": json_values,
                                          "answer": json_values, "answerKey": json_values})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400), st.sampled_from(["f.jsonl", "f.csv"]))
def test_arbitrary_bytes_load_or_fail_cleanly(tmp_path, blob, name):
    p = tmp_path / name
    p.write_bytes(blob)
    try:
        for ex in data.load(str(p), "test"):
            assert ex.answer in ex.labels and len(ex.choices) >= 2
    except EmreasonError as e:
        assert str(e)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(row, min_size=1, max_size=4))
def test_arbitrary_json_rows_load_or_fail_cleanly(tmp_path, rows):
    p = tmp_path / "rows.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    try:
        for ex in data.load(str(p), "test"):
            assert ex.answer in ex.labels and len(set(ex.labels)) == len(ex.labels)
    except EmreasonError as e:
        assert "rows.jsonl" in str(e) or "duplicate id" in str(e)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_rationale_helpers_never_crash(text):
    split_rationale(text, EX)
    reject_reason(text, EX, hinted=True, cfg=FilterConfig())
    assert target_text(text, EX).endswith("The answer is (B).")


def test_adversarial_outputs_are_parsed_conservatively():
    every_label = "\n".join(f"The answer is ({l})." for l in "ABCD")
    assert P.extract_answer(every_label, EX) is None
    fake_hint = "The correct answer is (B). Hint: the answer is (A)."
    assert P.extract_answer(fake_hint, EX) is None
    assert P.extract_answer("", EX) is None
    assert P.extract_answer("\ufffd\ufffd bytes \x00\x01 The answer is (B).", EX) == "B"
    endless = "step " * 20000
    assert P.extract_answer(endless, EX) is None
    assert P.extract_answer(endless + "The answer is (C).", EX) == "C"
