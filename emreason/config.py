"""Typed run configuration, validated before any model loads.

Every field has a default and a docstring (the TRL convention), and unknown keys are errors, so a
typo in a YAML file fails at once with the field's name instead of being silently ignored.
`load_config` turns pydantic's validation errors into one `EmreasonError` naming each bad field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import EmreasonError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class PromptConfig(_Section):
    cot: str = ('Think step by step, then finish with a final line of the form "The answer is (X)", '
                "where X is the letter of the correct choice.")
    """Instruction after the question for chain-of-thought answers."""
    hinted: str = ("The correct answer is ({letter}). Explain step by step why it is correct, reasoning "
                   "from the question alone as if you had worked it out yourself; do not mention that you "
                   'were given the answer. Finish with a final line of the form "The answer is ({letter})".')
    """Instruction for hinted sampling (STaR rationalization, PPS). `{letter}` and `{text}` are the
    correct choice's letter and text. Hinted prompts are only ever sampled from, never trained on."""
    direct: str = 'Reply with only the line "The answer is (X)", where X is the letter of the correct choice.'
    """Instruction for direct answers (no rationale)."""
    system: str | None = None
    """System message. None keeps the chat template's own default."""


class DataConfig(_Section):
    dataset: str = "arc_easy"
    """arc_easy, arc_challenge, openbookqa, mmlu, mmlu:<subject>, a .jsonl/.csv path, or hf:<hub name>."""
    data_dir: str | None = None
    """Folder holding arc/, openbookqa/, mmlu/. Unset: $EMREASON_DATA_DIR, then ../shared/data, then the hub."""
    train_split: str = "train"
    """Split the E-step samples from (`+` joins splits: MMLU has no train split, use `val+dev`)."""
    train_size: int | None = Field(256, ge=1)
    """Number of training questions (a seeded random subset); None for all."""
    eval_split: str = "test"
    """Held-out split for evaluation after each iteration. Must differ from train_split."""
    eval_size: int | None = Field(200, ge=1)
    """Number of evaluation questions (the first N, the same for every run); None for all."""
    seed: int = 0
    """Seed for the training subset, choice shuffling and sampling."""
    shuffle_choices: bool = False
    """Shuffle the order of choices in training prompts (the answer letter follows), so the
    model cannot learn a letter instead of a rationale."""

    @model_validator(mode="after")
    def _splits_differ(self):
        if self.train_split == self.eval_split:
            raise ValueError(f"eval_split equals train_split ({self.train_split!r}): evaluate on a held-out split")
        return self


class ModelConfig(_Section):
    name: str = "smollm2-135m"
    """An alias (smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b), a local HF folder, a .gguf
    file, a run directory (its latest iterate), or a Hugging Face hub id."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights' dtype. float32 is fastest on CPUs without bf16 units; bfloat16 on GPUs."""
    trust_remote_code: bool = False
    """Allow a hub model's own Python code to run. Off unless you trust its author."""
    allow_pickle: bool = False
    """Allow pickle (.bin/.pt) checkpoints, which can execute code when loaded. Off: safetensors only."""


class GenerationConfig(_Section):
    temperature: float = Field(0.7, ge=0.0)
    """Sampling temperature; 0 is greedy."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_new_tokens: int = Field(256, ge=1, le=8192)
    """Longest rationale, in tokens; a sample cut here is recorded as truncated."""
    batch_size: int = Field(16, ge=1)
    """Prompts (times samples per prompt) decoded together."""
    stop_at_answer: bool = True
    """Stop each sequence as soon as its answer line is complete."""


class BackendConfig(_Section):
    name: Literal["hf"] = "hf"
    """Generation engine: hf (transformers, CPU or GPU)."""
    device: str = "auto"
    """auto (cuda if available, else cpu), cpu, cuda, cuda:N."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads; None keeps torch's default (the machine's cores)."""


class EvalConfig(_Section):
    mode: Literal["cot", "direct", "loglik"] = "cot"
    """cot: rationale then answer; direct: answer only; loglik: score each choice's likelihood
    (lm-evaluation-harness style, comparable with published numbers)."""
    temperature: float = Field(0.0, ge=0.0)
    """Evaluation decoding temperature (0: greedy, the usual choice)."""
    max_new_tokens: int = Field(256, ge=1, le=8192)
    """Longest evaluation output."""
    batch_size: int = Field(16, ge=1)
    """Evaluation batch size."""


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see the documented fields)"
        parts.append(f"{loc}: {msg} (got {e.get('input')!r})" if e["type"] != "extra_forbidden"
                     else f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise EmreasonError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise EmreasonError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise EmreasonError(f"{path}: not UTF-8 text") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise EmreasonError(f"{path}: the top level must be a mapping of sections (data:, model:, ...)")
    return raw


def validate(cls: type[BaseModel], raw: dict, source: str):
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        raise EmreasonError(format_validation_error(e, source)) from None
