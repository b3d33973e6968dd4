"""Multiple-choice questions: one example type, and loaders for the benchmarks and a user's files.

A benchmark is data, not code (as in lm-evaluation-harness): `DATASETS` maps a name to its file
layout and format, so adding a benchmark that shares a format is one entry. Labels stay as
published (A-E, 1-4) in `Example.answer`; the model always sees letters A, B, C, ... in order
(`Example.letters`), so prompts and answer extraction are uniform across datasets.

Data root resolution: explicit `data_dir` > `$EMREASON_DATA_DIR` > `../shared/data` beside the
repository > the Hugging Face hub (for users who are online).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import EmreasonError

LETTERS = "ABCDEFGHIJ"
MAX_FIELD_CHARS = 20_000  # far beyond any benchmark question; longer text cannot fit a prompt anyway


@dataclass(frozen=True)
class Example:
    """One multiple-choice question.

    `choices` holds (published label, text) pairs in presentation order; `answer` is the published
    label of the correct choice. The model sees the choices lettered A, B, C, ... by position.
    """

    id: str
    question: str
    choices: tuple[tuple[str, str], ...]
    answer: str
    source: str
    subject: str | None = None
    fact: str | None = None

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.choices]

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.choices]

    @property
    def letters(self) -> str:
        """Display letters, one per choice, in presentation order."""
        return LETTERS[: len(self.choices)]

    @property
    def answer_index(self) -> int:
        return self.labels.index(self.answer)

    @property
    def answer_letter(self) -> str:
        """The letter under which the correct choice is shown to the model."""
        return self.letters[self.answer_index]

    @property
    def answer_text(self) -> str:
        return self.choices[self.answer_index][1]

    def shuffled(self, rng: random.Random) -> "Example":
        """The same question with its choices in a random order (the answer letter follows).

        Guards against a model learning a letter instead of a rationale."""
        order = list(self.choices)
        rng.shuffle(order)
        return replace(self, choices=tuple(order))

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "choices": [{"label": l, "text": t} for l, t in self.choices],
            "answer": self.answer,
            "source": self.source,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """Where a benchmark's files are (relative to the data root) and how to read them."""

    format: str  # "arc" (ARC/OpenBookQA JSONL) or "mmlu" (header-less CSV per subject)
    splits: dict[str, str]  # split name -> relative path ("{subject}" for MMLU)
    hub: tuple[str, str | None] | None = None  # (hub path, config name) for online users
    hub_splits: dict[str, str] = field(default_factory=dict)
    description: str = ""


DATASETS: dict[str, DatasetSpec] = {
    "arc_easy": DatasetSpec(
        format="arc",
        splits={s: f"arc/ARC-Easy/ARC-Easy-{f}.jsonl" for s, f in
                {"train": "Train", "dev": "Dev", "test": "Test"}.items()},
        hub=("allenai/ai2_arc", "ARC-Easy"),
        hub_splits={"train": "train", "dev": "validation", "test": "test"},
        description="AI2 Reasoning Challenge, Easy set (grade-school science)",
    ),
    "arc_challenge": DatasetSpec(
        format="arc",
        splits={s: f"arc/ARC-Challenge/ARC-Challenge-{f}.jsonl" for s, f in
                {"train": "Train", "dev": "Dev", "test": "Test"}.items()},
        hub=("allenai/ai2_arc", "ARC-Challenge"),
        hub_splits={"train": "train", "dev": "validation", "test": "test"},
        description="AI2 Reasoning Challenge, Challenge set",
    ),
    "openbookqa": DatasetSpec(
        format="arc",
        splits={s: f"openbookqa/Main/{s}.jsonl" for s in ("train", "dev", "test")},
        hub=("allenai/openbookqa", "main"),
        hub_splits={"train": "train", "dev": "validation", "test": "test"},
        description="OpenBookQA (Main): elementary science with an open book of facts",
    ),
    "mmlu": DatasetSpec(
        format="mmlu",
        splits={s: f"mmlu/data/{s}/{{subject}}_{s}.csv" for s in ("dev", "val", "test")},
        hub=("cais/mmlu", "all"),
        hub_splits={"dev": "dev", "val": "validation", "test": "test"},
        description="MMLU, 57 subjects (no train split: train on val+dev)",
    ),
}

SPLIT_ALIASES = {"validation": "dev", "valid": "dev"}


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The local data root, or None when the hub should be used."""
    if data_dir:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise EmreasonError(f"data_dir {str(path)!r} is not a directory: pass an existing folder "
                                "(the one holding arc/, openbookqa/, mmlu/) or leave it unset")
        return path
    env = os.environ.get("EMREASON_DATA_DIR")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise EmreasonError(f"EMREASON_DATA_DIR={env!r} is not a directory: fix or unset it")
        return path
    for candidate in (repo_root().parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def list_subjects(data_dir: Path) -> list[str]:
    return sorted(p.name[: -len("_test.csv")] for p in (data_dir / "mmlu/data/test").glob("*_test.csv"))


def parse_dataset_name(name: str) -> tuple[str, str | None]:
    """'mmlu:anatomy' -> ('mmlu', 'anatomy'); 'arc_easy' -> ('arc_easy', None)."""
    base, _, sub = name.partition(":")
    return base, (sub or None)


def load(name: str, split: str, data_dir: str | os.PathLike | None = None, limit: int | None = None,
         seed: int | None = None) -> list[Example]:
    """Load a dataset split.

    `name` is a benchmark (`arc_easy`, `arc_challenge`, `openbookqa`, `mmlu`, `mmlu:<subject>`), a
    path to the user's own `.jsonl`/`.csv` file (`{split}` in the path is replaced by the split), or
    `hf:<hub path>[:config]`. `split` may join splits with `+` (`val+dev`). With `limit`, the first
    `limit` examples are kept, or a seeded random subset when `seed` is given.
    """
    examples: list[Example] = []
    for part in split.split("+"):
        examples.extend(_load_one(name, part.strip(), data_dir))
    _check_unique_ids(examples, name, split)
    if limit is not None:
        if limit < 1:
            raise EmreasonError(f"limit must be at least 1 (got {limit})")
        if seed is not None and limit < len(examples):
            examples = random.Random(seed).sample(examples, limit)
        else:
            examples = examples[:limit]
    return examples


def _load_one(name: str, split: str, data_dir) -> list[Example]:
    if name.startswith("hf:"):
        path, _, config = name[3:].partition(":")
        return _load_hub(path, config or None, split, source=name)
    if name.endswith((".jsonl", ".json", ".csv")):
        return load_file(name.replace("{split}", split), source=Path(name).stem)
    base, subject = parse_dataset_name(name)
    if base not in DATASETS:
        raise EmreasonError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)} "
                            "(or mmlu:<subject>), a .jsonl/.csv file, or hf:<hub name>")
    spec = DATASETS[base]
    split = SPLIT_ALIASES.get(split, split)
    if base == "mmlu" and split == "train":
        raise EmreasonError("MMLU has no train split: train on 'val+dev' and evaluate on 'test'")
    if split not in spec.splits:
        raise EmreasonError(f"dataset {base!r} has no split {split!r}: choose one of {', '.join(spec.splits)}")
    root = resolve_data_dir(data_dir)
    if root is None:
        if spec.hub is None:
            raise EmreasonError(f"no local data for {name!r}: pass --data-dir or set EMREASON_DATA_DIR")
        return _load_hub(spec.hub[0], subject if base == "mmlu" and subject else spec.hub[1],
                         spec.hub_splits[split], source=name)
    if spec.format == "arc":
        path = root / spec.splits[split]
        if not path.is_file():
            raise EmreasonError(f"{path} not found: is data_dir ({root}) the folder holding arc/, openbookqa/, mmlu/?")
        return read_arc_jsonl(path, source=base)
    subjects = list_subjects(root)
    if not subjects:
        raise EmreasonError(f"no MMLU files under {root / 'mmlu/data/test'}: check data_dir")
    if subject is not None:
        if subject not in subjects:
            close = difflib.get_close_matches(subject.lower(), subjects, n=3, cutoff=0.6)
            raise EmreasonError(f"unknown MMLU subject {subject!r}" +
                                (f": did you mean {', '.join(close[:5])}?" if close else
                                 f": choose one of {', '.join(subjects)}"))
        subjects = [subject]
    out: list[Example] = []
    for s in subjects:
        out.extend(read_mmlu_csv(root / spec.splits[split].format(subject=s), subject=s, split=split))
    return out


def _example(id_: str, question, choices: list[tuple[str, str]], answer, source: str, where: str,
             subject: str | None = None, fact: str | None = None) -> Example:
    """Build an Example, validating it; `where` (file:line) goes into every error message."""
    if not isinstance(question, str) or not question.strip():
        raise EmreasonError(f"{where}: empty or missing question: every row needs question text")
    if len(question) > MAX_FIELD_CHARS or any(isinstance(t, str) and len(t) > MAX_FIELD_CHARS for _, t in choices):
        raise EmreasonError(f"{where}: a field is over {MAX_FIELD_CHARS} characters: is this the right file "
                            "(or a column shifted by a stray delimiter)?")
    if len(choices) < 2:
        raise EmreasonError(f"{where}: {len(choices)} choice(s): a multiple-choice row needs at least two")
    if len(choices) > len(LETTERS):
        raise EmreasonError(f"{where}: {len(choices)} choices: at most {len(LETTERS)} are supported")
    labels = [str(l).strip() for l, _ in choices]
    if any(not l for l in labels):
        raise EmreasonError(f"{where}: a choice has an empty label")
    if len(set(labels)) != len(labels):
        raise EmreasonError(f"{where}: duplicate choice labels {labels}: each label must appear once")
    for l, t in choices:
        if not isinstance(t, str) or not t.strip():
            raise EmreasonError(f"{where}: choice {l!r} has no text")
    answer = "" if answer is None else str(answer).strip()
    if not answer:
        raise EmreasonError(f"{where}: no answer: every row needs the label of its correct choice")
    if answer not in labels:
        raise EmreasonError(f"{where}: answer {answer!r} is not among the labels {labels}")
    return Example(id=str(id_), question=question.strip(),
                   choices=tuple((l, t.strip()) for l, (_, t) in zip(labels, choices)),
                   answer=answer, source=source, subject=subject, fact=fact)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EmreasonError(f"{path} not found") from None
    except UnicodeDecodeError as e:
        raise EmreasonError(f"{path}: not UTF-8 text (byte {e.start}): re-save the file as UTF-8") from None
    except IsADirectoryError:
        raise EmreasonError(f"{path} is a directory, not a data file") from None


def read_arc_jsonl(path: Path, source: str) -> list[Example]:
    """ARC / OpenBookQA JSONL: {"id", "question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}."""
    return _read_jsonl(Path(path), source)


def _read_jsonl(path: Path, source: str) -> list[Example]:
    out = []
    text = _read_text(path)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EmreasonError(f"{where}: not valid JSON ({e.msg}): each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise EmreasonError(f"{where}: expected a JSON object, got {type(row).__name__}")
        out.append(_row_to_example(row, where, source, default_id=f"{source}-{lineno}"))
    if not out:
        raise EmreasonError(f"{path}: no examples (the file is empty)")
    return out


def _row_to_example(row: dict, where: str, source: str, default_id: str) -> Example:
    """Accept ARC's nested layout and the flat layouts users write by hand.

    Flat: {"question": str, "choices": [str, ...] | {"A": str, ...} | [{"label", "text"}] |
    {"label": [...], "text": [...]}, "answer": label | index}."""
    q = row.get("question")
    choices_raw = row.get("choices")
    if isinstance(q, dict):  # ARC / OpenBookQA
        choices_raw = q.get("choices")
        q = q.get("stem")
    choices = _normalise_choices(choices_raw, where)
    labels = [l for l, _ in choices]
    answer = row.get("answerKey", row.get("answer", row.get("label")))
    if isinstance(answer, int) and not isinstance(answer, bool) and str(answer) not in labels:
        if 0 <= answer < len(labels):  # an index, as in MMLU's hub format
            answer = labels[answer]
    return _example(row.get("id", default_id), q, choices, answer, source, where,
                    subject=row.get("subject"), fact=row.get("fact1", row.get("fact")))


def _normalise_choices(raw, where: str) -> list[tuple[str, str]]:
    if raw is None:
        raise EmreasonError(f"{where}: no 'choices' field: give the options as a list or a label->text object")
    if isinstance(raw, dict) and "text" in raw and isinstance(raw["text"], list):  # HF columnar
        labels = raw.get("label") or list(LETTERS[: len(raw["text"])])
        return list(zip(map(str, labels), raw["text"]))
    if isinstance(raw, dict):
        return [(str(k), v) for k, v in raw.items()]
    if isinstance(raw, list):
        if all(isinstance(c, dict) for c in raw):
            try:
                return [(str(c["label"]), c["text"]) for c in raw]
            except KeyError as e:
                raise EmreasonError(f"{where}: a choice object lacks {e}: use {{'label': 'A', 'text': '...'}}") from None
        if all(isinstance(c, str) for c in raw):
            if len(raw) > len(LETTERS):
                raise EmreasonError(f"{where}: {len(raw)} choices: at most {len(LETTERS)} are supported")
            return list(zip(LETTERS, raw))
    raise EmreasonError(f"{where}: 'choices' must be a list of strings, a list of {{label, text}} or a label->text object")


def read_mmlu_csv(path: Path, subject: str, split: str) -> list[Example]:
    """MMLU's original CSVs: no header; question, A, B, C, D, answer. Some files use CRLF."""
    path = Path(path)
    out = []
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    for rowno, row in enumerate(reader, 1):
        where = f"{path}:row {rowno}"
        if len(row) != 6:
            raise EmreasonError(f"{where}: expected 6 columns (question, A, B, C, D, answer), got {len(row)}")
        out.append(_example(f"{subject}_{split}_{rowno}", row[0], list(zip("ABCD", row[1:5])), row[5],
                            "mmlu", where, subject=subject))
    return out


def load_file(path: str | os.PathLike, source: str | None = None) -> list[Example]:
    """A user's own file: JSONL (one object per line, see `_row_to_example`) or CSV with a header
    row naming `question`, `answer`, the choice columns (single letters or digits), and optionally
    `id` and `subject`."""
    path = Path(path)
    source = source or path.stem
    if not path.exists():
        raise EmreasonError(f"data file {path} not found")
    if path.suffix in (".jsonl", ".json"):
        return _read_jsonl(path, source)
    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise EmreasonError(f"{path}: empty CSV: the first row must be a header (question, A, B, ..., answer)")
    cols = [c.strip() for c in reader.fieldnames]
    if "question" not in cols or "answer" not in cols:
        raise EmreasonError(f"{path}: header {cols} needs 'question' and 'answer' columns, plus one column per choice (A, B, ...)")
    choice_cols = [c for c in cols if re.fullmatch(r"[A-J]|[0-9]", c)]
    out = []
    for rowno, row in enumerate(reader, 2):
        row = {(k or "").strip(): v for k, v in row.items()}
        where = f"{path}:{rowno}"
        choices = [(c, row[c]) for c in choice_cols if row.get(c) not in (None, "")]
        out.append(_example(row.get("id") or f"{source}-{rowno}", row.get("question"), choices,
                            row.get("answer"), source, where, subject=row.get("subject") or None))
    if not out:
        raise EmreasonError(f"{path}: no examples below the header")
    return out


def _load_hub(path: str, config: str | None, split: str, source: str) -> list[Example]:
    """Hub datasets with ARC's columns (question, choices{label,text}, answerKey) or MMLU's
    (question, choices[list], answer[int])."""
    try:
        import datasets
        ds = datasets.load_dataset(path, config, split=split)
    except Exception as e:  # offline, unknown name, unknown split: all user-fixable
        raise EmreasonError(f"could not load {path!r} (config {config!r}, split {split!r}) from the "
                            f"Hugging Face hub ({type(e).__name__}: {str(e)[:200]}); offline users pass "
                            "--data-dir or set EMREASON_DATA_DIR") from None
    out = []
    for i, row in enumerate(ds):
        row = dict(row)
        if "question_stem" in row and not row.get("question"):
            row["question"] = row["question_stem"]
        out.append(_row_to_example(row, f"{path}[{split}][{i}]", source, default_id=f"{source}-{split}-{i}"))
    return out


def _check_unique_ids(examples: list[Example], name: str, split: str) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise EmreasonError(f"{name} [{split}]: duplicate id {ex.id!r}: ids must be unique within a split")
        seen.add(ex.id)
