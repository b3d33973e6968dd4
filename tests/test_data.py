import json
import random

import pytest

from emreason import data
from emreason.errors import EmreasonError

OFFICIAL = {
    ("arc_easy", "train"): 2251, ("arc_easy", "dev"): 570, ("arc_easy", "test"): 2376,
    ("arc_challenge", "train"): 1119, ("arc_challenge", "dev"): 299, ("arc_challenge", "test"): 1172,
    ("openbookqa", "train"): 4957, ("openbookqa", "dev"): 500, ("openbookqa", "test"): 500,
    ("mmlu", "dev"): 285, ("mmlu", "val"): 1531, ("mmlu", "test"): 14042,
}


@pytest.mark.parametrize("name,split", sorted(OFFICIAL))
def test_counts_match_official_numbers(data_dir, name, split):
    examples = data.load(name, split, data_dir)
    assert len(examples) == OFFICIAL[(name, split)]
    for ex in examples:
        assert ex.answer in ex.labels and len(ex.choices) >= 2


def test_numeric_labels_kept_but_letters_shown(data_dir):
    examples = data.load("arc_easy", "train", data_dir)
    numeric = [ex for ex in examples if ex.labels[0] == "1"]
    assert len(numeric) >= 100
    ex = numeric[0]
    assert ex.answer in {"1", "2", "3", "4"}
    assert ex.letters == "ABCD"[: len(ex.choices)]
    assert ex.answer_letter == "ABCD"[int(ex.answer) - 1]


def test_mmlu_subjects_and_joined_splits(data_dir):
    assert len(data.list_subjects(data_dir)) == 57
    anatomy = data.load("mmlu:anatomy", "test", data_dir)
    assert len(anatomy) == 135 and all(ex.subject == "anatomy" for ex in anatomy)
    assert len(data.load("mmlu", "val+dev", data_dir)) == 1531 + 285
    assert data.load("arc_easy", "validation", data_dir)[0].id == data.load("arc_easy", "dev", data_dir)[0].id


@pytest.mark.parametrize("name,split,fragment", [
    ("arc_easy", "val", "no split 'val'"),
    ("mmlu", "train", "no train split"),
    ("mmlu:anatomyy", "test", "did you mean anatomy"),
    ("squad", "train", "unknown dataset 'squad'"),
])
def test_unknown_names_are_clear_errors(data_dir, name, split, fragment):
    with pytest.raises(EmreasonError, match=fragment):
        data.load(name, split, data_dir)


def test_limit_and_seeded_subset(data_dir):
    first = data.load("arc_easy", "test", data_dir, limit=5)
    assert [e.id for e in first] == [e.id for e in data.load("arc_easy", "test", data_dir)[:5]]
    a = data.load("arc_easy", "train", data_dir, limit=20, seed=3)
    b = data.load("arc_easy", "train", data_dir, limit=20, seed=3)
    c = data.load("arc_easy", "train", data_dir, limit=20, seed=4)
    assert [e.id for e in a] == [e.id for e in b] != [e.id for e in c]


def test_missing_data_dir_is_an_error(tmp_path):
    with pytest.raises(EmreasonError, match="is not a directory"):
        data.load("arc_easy", "test", tmp_path / "nope")
    with pytest.raises(EmreasonError, match="not found"):
        data.load("arc_easy", "test", tmp_path)


def test_shuffled_keeps_the_answer_text():
    ex = data.Example("q", "Which?", (("A", "w"), ("B", "x"), ("C", "y"), ("D", "z")), "C", "t")
    seen = set()
    for s in range(20):
        sh = ex.shuffled(random.Random(s))
        assert sh.answer_text == "y" and sh.answer == "C"
        seen.add(sh.answer_letter)
    assert len(seen) > 1


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return p


GOOD = {"id": "1", "question": "Q?", "choices": ["x", "y"], "answer": "B"}


@pytest.mark.parametrize("row,fragment", [
    ({**GOOD, "answer": None}, "no answer"),
    ({**GOOD, "answer": "C"}, "not among the labels"),
    ({**GOOD, "choices": ["only one"]}, "at least two"),
    ({**GOOD, "choices": [{"label": "A", "text": "x"}, {"label": "A", "text": "y"}], "answer": "A"}, "duplicate choice labels"),
    ({**GOOD, "question": ""}, "empty or missing question"),
    ({**GOOD, "choices": None}, "no 'choices' field"),
    ({**GOOD, "choices": ["x", ""]}, "has no text"),
    ({**GOOD, "question": "why? " * 10_000}, "over 20000 characters"),
    ({**GOOD, "choices": ["x", "y" * 50_000]}, "over 20000 characters"),
    ({**GOOD, "choices": [1, 2]}, "'choices' must be"),
])
def test_malformed_jsonl_rows_name_file_and_line(tmp_path, row, fragment):
    p = _write(tmp_path, "bad.jsonl", json.dumps(GOOD) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(EmreasonError, match=fragment) as e:
        data.load(str(p), "test")
    assert f"{p}:2" in str(e.value)


@pytest.mark.parametrize("content,fragment", [
    ("", "no examples"),
    ("not json\n", "not valid JSON"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    ("[1, 2]\n", "expected a JSON object"),
    (json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n", "duplicate id"),
])
def test_malformed_files(tmp_path, content, fragment):
    p = _write(tmp_path, "f.jsonl", content)
    with pytest.raises(EmreasonError, match=fragment):
        data.load(str(p), "train")


def test_user_files_jsonl_and_csv(tmp_path):
    _write(tmp_path, "mine_train.jsonl",
               json.dumps({"question": "2+2?", "choices": {"A": "3", "B": "4"}, "answer": "B"}) + "\n" +
               json.dumps({"question": "Sky?", "choices": ["blue", "green", "red"], "answer": 0}) + "\n")
    ex = data.load(str(tmp_path / "mine_{split}.jsonl"), "train")
    assert [e.answer_letter for e in ex] == ["B", "A"] and ex[1].answer_text == "blue"
    c = _write(tmp_path, "mine.csv", 'id,question,A,B,C,answer\nq1,"Pick, one",x,"y ""quoted""",z,C\n')
    (e,) = data.load(str(c), "test")
    assert e.id == "q1" and e.question == "Pick, one" and e.texts[1] == 'y "quoted"' and e.answer_letter == "C"
    bad = _write(tmp_path, "bad.csv", "q,a\n1,2\n")
    with pytest.raises(EmreasonError, match="needs 'question' and 'answer'"):
        data.load(str(bad), "test")


def test_env_var_data_root(monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv("EMREASON_DATA_DIR", str(data_dir))
    assert data.resolve_data_dir() == data_dir
    monkeypatch.setenv("EMREASON_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(EmreasonError, match="EMREASON_DATA_DIR"):
        data.resolve_data_dir()
