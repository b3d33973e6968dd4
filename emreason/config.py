"""Typed run configuration, validated before any model loads.

Every field has a default and a docstring (the TRL convention), and unknown keys are errors, so a
typo in a YAML file fails at once with the field's name instead of being silently ignored.
`load_config` turns pydantic's validation errors into one `EmreasonError` naming each bad field.
"""

from __future__ import annotations

import re
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
    cot_prefix: str = ""
    """Text that opens the assistant's turn for chain-of-thought sampling, training and evaluation
    (e.g. "Let's think step by step."). Part of the prompt: never trained on."""


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
    eval_subset_seed: int | None = None
    """Draw the eval_size questions at random with this seed instead of taking the first N (MMLU's
    test files are sorted by subject, so its first N are one or two subjects)."""
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
    chunk_questions: int = Field(64, ge=1)
    """Questions per E-step chunk: the unit of progress written to the sample log (and kept
    across a crash)."""


class BackendConfig(_Section):
    name: Literal["hf", "llamacpp", "vllm"] = "hf"
    """Generation engine for the E-step and evaluation: hf (transformers, CPU or GPU), llamacpp
    (llama.cpp on the GGUF, fastest on CPUs; `emreason[llamacpp]`), vllm (GPUs; `emreason[vllm]`).
    Training always runs in transformers."""
    device: str = "auto"
    """auto (cuda if available, else cpu), cpu, cuda, cuda:N."""
    threads: int | None = Field(None, ge=1)
    """CPU threads (torch, llama.cpp); None: the machine's cores."""
    engine_args: dict = {}
    """Extra keyword arguments for the engine: vllm.LLM(...) (e.g. gpu_memory_utilization,
    tensor_parallel_size), llama.cpp context parameters (e.g. n_ctx)."""
    workers: int = Field(1, ge=1)
    """E-step workers. Above 1, the E-step's chunks of questions are spread over Ray actors, each
    holding its own backend (`emreason[ray]`); the sample log is the same as with one worker."""
    ray_address: str | None = None
    """Ray cluster to join (e.g. "auto" on a cluster node); None starts a local Ray instance."""
    worker_gpus: float = Field(0.0, ge=0.0)
    """GPUs per E-step worker (Ray's num_gpus)."""
    worker_cpus: float = Field(1.0, gt=0.0)
    """CPUs per E-step worker (Ray's num_cpus)."""


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
    chunk_questions: int = Field(50, ge=1)
    """Questions per evaluation chunk, each saved as it finishes: a stopped evaluation resumes
    after its last finished chunk."""


class FilterConfig(_Section):
    hint_leak: bool = True
    """Reject hinted samples whose rationale echoes or reveals the hint ("the correct answer is",
    "as the hint says", ...): the M-step would learn to echo, not to reason."""
    answer_first: bool = True
    """Reject outputs that commit to an answer before reasoning (fewer than `answer_first_words`
    words before the first answer statement)."""
    answer_first_words: int = Field(5, ge=0)
    """Words of reasoning required before the first answer statement."""
    min_rationale_words: int = Field(10, ge=0)
    """Reject rationales shorter than this many words (the text before the final answer line)."""


class SamplerConfig(_Section):
    name: Literal["rejection", "star", "pps", "none", "direct"] = "pps"
    """E-step proposal: rejection (up to k plain samples), star (plain, then hinted rationalization
    when wrong), pps (hinted only); baselines none (no training) and direct (answer-only targets)."""
    k: int = Field(4, ge=1)
    """rejection: sampling budget per question (plain prompt)."""
    keep: int = Field(1, ge=1)
    """Accepted samples kept per question at most (ReST-EM keeps several; STaR keeps one)."""
    star_plain: int = Field(1, ge=1)
    """star: plain samples before rationalizing."""
    hinted: int = Field(1, ge=1)
    """star, pps: hinted samples per question (the rationalization budget)."""
    filters: FilterConfig = FilterConfig()
    """Rationale filters applied to correct samples before acceptance; each rejection is counted."""

    def stages(self) -> list[tuple[str, int]]:
        """The proposal as (prompt mode, budget) stages; a question goes on to the next stage only
        while it has fewer than `keep` accepted samples."""
        return {"rejection": [("cot", self.k)], "star": [("cot", self.star_plain), ("hinted", self.hinted)],
                "pps": [("hinted", self.hinted)]}.get(self.name, [])


class TrainConfig(_Section):
    method: Literal["lora", "full"] = "lora"
    """lora (peft adapters, the default) or full fine-tuning."""
    init: Literal["base", "previous"] = "base"
    """base: each iteration fine-tunes the original model on its own accepted samples (STaR,
    ReST-EM); previous: continue from the last iterate."""
    lora_r: int = Field(16, ge=1)
    """LoRA rank."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA branch."""
    target_modules: str | list[str] = "all-linear"
    """Modules that get adapters: "all-linear" or a list of names (q_proj, v_proj, ...)."""
    learning_rate: float = Field(2e-4, gt=0.0)
    """Peak learning rate (2e-4 suits LoRA; use ~1e-5 for full fine-tuning)."""
    epochs: float = Field(2.0, gt=0.0)
    """Passes over the accepted samples."""
    batch_size: int = Field(4, ge=1)
    """Sequences per optimizer micro-step."""
    grad_accum: int = Field(1, ge=1)
    """Micro-steps per optimizer step."""
    max_length: int = Field(512, ge=16)
    """Longest training sequence (prompt + target) in tokens; longer samples are dropped and counted."""
    lr_scheduler: str = "linear"
    """transformers scheduler name (linear, cosine, constant, ...)."""
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of steps spent warming up the learning rate."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay."""
    report_to: list[str] = []
    """Trainer loggers: [] (none), ["tensorboard"], ["wandb"] (set WANDB_MODE=offline to stay local)."""
    logging_steps: int = Field(5, ge=1)
    """Steps between training loss logs."""
    bf16: bool | None = None
    """bfloat16 mixed precision (autocast; the weights and the Adam state stay float32). None: on
    for a bfloat16 model on a GPU. True also on a CPU with bf16 units (AVX512-BF16, AMX), where
    matmuls run ~2.5x the float32 rate (BENCHMARKS.md); on a CPU without them (emulated bf16 is
    slower) the M-step says so and trains in float32, so one config runs everywhere. The precision
    used is in each iteration's train_stats.json."""
    checkpoint_steps: int | None = Field(None, ge=0)
    """Optimizer steps between M-step checkpoints (iter_K/logs, deleted once the iterate is saved),
    from which an interrupted M-step resumes. None: 10 for LoRA (adapter + optimizer state: small),
    0 (never) for full fine-tuning, which would write the whole model and its Adam state each time."""
    launcher: str | None = None
    """An accelerate config file (see configs/accelerate/): the M-step runs under `accelerate launch`
    with it (DDP, FSDP, DeepSpeed ZeRO, several nodes); None trains in the loop's own process."""


# What a resumed run may change: how many iterations, and how often the M-step checkpoints and
# logs, which decide what an interruption costs, not what is sampled or trained. The M-step's
# checkpoint fingerprint leaves the last three out, so its checkpoints survive such a change.
RESUME_MAY_CHANGE = ("iterations", "train.checkpoint_steps", "train.logging_steps", "train.report_to")


class RunConfig(_Section):
    name: str | None = None
    """Run name (default: the config file's name). Letters, digits, '.', '_' and '-' only."""
    iterations: int = Field(2, ge=1, le=100)
    """EM iterations (E-step, M-step, evaluation)."""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    sampler: SamplerConfig = SamplerConfig()
    generation: GenerationConfig = GenerationConfig()
    """E-step sampling settings."""
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    backend: BackendConfig = BackendConfig()
    prompts: PromptConfig = PromptConfig()
    eval_base: bool = True
    """Evaluate the untrained model first (iteration 0), the reference for every later iteration."""

    @model_validator(mode="after")
    def _consistent(self):
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", self.name):
            raise ValueError(f"name {self.name!r}: use letters, digits, '.', '_' and '-' (no '/' or '..')")
        if self.sampler.name == "direct" and "mode" not in self.eval.model_fields_set:
            self.eval.mode = "direct"  # a model trained on answers alone is evaluated that way
        if self.backend.name == "llamacpp" and self.train.method != "lora":
            raise ValueError("backend.name llamacpp runs LoRA iterates on the original GGUF: set train.method "
                             "lora, or use backend hf/vllm for full fine-tuning")
        if self.train.launcher is not None and not Path(self.train.launcher).is_file():
            raise ValueError(f"train.launcher {self.train.launcher!r}: no such accelerate config file")
        if self.generation.temperature == 0 and self.sampler.name in ("rejection", "star", "pps"):
            if self.sampler.k > 1 or self.sampler.hinted > 1 or self.sampler.star_plain > 1:
                raise ValueError("generation.temperature is 0 (greedy) but the sampler draws several "
                                 "samples per question: they would all be the same; use temperature > 0")
        return self


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
