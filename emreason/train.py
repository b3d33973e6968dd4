"""M-step: reward-weighted, completion-only fine-tuning on the accepted samples.

maximise sum_i r_i * log p(z_i, y*_i | x_i): the loss covers the rationale and answer tokens only
(prompt tokens are masked with -100), each sequence weighted by its reward. transformers' Trainer
runs the optimisation (so accelerate, loggers and distributed launchers work unchanged); all that
is ours is the tokenization and a five-line weighted loss.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments

from . import stop
from .clock import PhaseClock
from .config import RESUME_MAY_CHANGE, ModelConfig, TrainConfig
from .errors import note
from .models import cpu_info, load, machine
from .store import disk_errors, read_json, write_json


def tokenize(rows: list[dict], tok, max_length: int) -> tuple[list[dict], int]:
    """Rows of {prompt, completion, weight} -> input_ids with prompt-masked labels.

    Prompt and completion are tokenized apart and joined, so the boundary is exact; the completion
    ends with the end-of-sequence token so the model learns to stop. Returns (examples, dropped)."""
    out, dropped = [], 0
    eos = tok.eos_token or ""
    for r in rows:
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        c = tok(r["completion"] + eos, add_special_tokens=False)["input_ids"]
        if len(p) + len(c) > max_length:
            dropped += 1
            continue
        out.append({"input_ids": p + c, "labels": [-100] * len(p) + c, "weight": float(r.get("weight", 1.0)),
                    "length": len(p) + len(c)})
    return out, dropped


class _Collator:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        weight = torch.tensor([b["weight"] for b in batch], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "weight": weight}


def _takes_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def weighted_nll(model, inputs: dict, labels: torch.Tensor, weight: torch.Tensor, denom=None):
    """sum over completion tokens of weight * -log p, divided by `denom` (default: their count).

    The vocabulary projection is computed only from the first position that predicts a completion
    token on: prompts are ~2/3 of the M-step's tokens and the projection is 15-20% of a small
    model's compute (49k-152k vocabulary), so the logits of prompt positions, which the loss
    masks anyway, are not computed (`logits_to_keep`, where the model takes it)."""
    width = labels.size(1)
    has = labels != -100
    keep = width
    if has.any() and _takes_logits_to_keep(model):
        first = int(has.float().argmax(dim=1)[has.any(dim=1)].min())  # first completion position in the batch
        keep = width - max(first - 1, 0)
        outputs = model(**inputs, logits_to_keep=keep)
    else:
        outputs = model(**inputs)
    logits = outputs.logits[:, :-1].float()
    target = labels[:, width - keep + 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100,
                         reduction="none").view(target.shape)
    tokens = target != -100
    denom = denom if denom is not None else tokens.sum().clamp(min=1)
    return (ce * tokens * weight.to(ce.device)[:, None]).sum() / denom, outputs


RESUME_MARKER = "emreason_resume.json"


class WeightedTrainer(Trainer):
    """Token-level cross-entropy on the completion, each sequence scaled by its reward.

    It also keeps the sum of its step losses and the wall and CPU seconds spent so far and writes
    them, with a fingerprint of what is being trained, into each checkpoint as the checkpoint's last
    file: Trainer's own training_loss covers only the steps since a resume (and a timer started at
    the resume would too), and a checkpoint without the file may be half-written."""

    fingerprint = ""
    loss_sum = 0.0
    # wall (stops left out), CPU and paused seconds so far, from the steps before a resume on
    spent = (0.0, 0.0, 0.0)
    clock: PhaseClock | None = None  # running while this process trains

    def elapsed(self) -> tuple[float, float, float]:
        """Wall, CPU and paused seconds of this M-step so far, the steps before a resume included."""
        if self.clock is not None:
            self.spent = tuple(a + b for a, b in zip(self.spent, self.clock.lap()))
        return self.spent

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = inputs.pop("weight")
        labels = inputs.pop("labels")
        loss, outputs = weighted_nll(model, inputs, labels, weight, num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # denom counts the tokens of every process's batch and DDP averages gradients over
            # processes: scale back so N processes take the same step as one process on N batches.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.loss_sum = self.loss_sum + loss  # what Trainer adds up for training_loss; a tensor: no GPU sync
        return loss

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
        if self.is_world_process_zero() and folder.is_dir():
            seconds, cpu_seconds, paused = self.elapsed()
            write_json(folder / RESUME_MARKER, {"fingerprint": self.fingerprint, "loss_sum": float(self.loss_sum),
                                                "seconds": seconds, "cpu_seconds": cpu_seconds,
                                                "paused_seconds": paused})


class _StopOnRequest(TrainerCallback):
    """A stop request (emreason.stop) ends training after the optimizer step in flight, with a
    checkpoint where the M-step keeps them. Under a distributed launcher every process must stop at
    the same step (a signal may reach them at different steps): they agree by an all-reduce."""

    def __init__(self, save: bool):
        self.save = save

    def on_step_end(self, args, state, control, **kwargs):
        asked = stop.requested() is not None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([float(asked)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            asked = bool(flag.item())
        if asked:
            control.should_training_stop = True
            control.should_save = control.should_save or self.save
        return control


def _fingerprint(examples: list[dict], model_cfg: ModelConfig, cfg: TrainConfig, seed: int, init_from) -> str:
    bookkeeping = {k.removeprefix("train.") for k in RESUME_MAY_CHANGE if k.startswith("train.")}
    key = json.dumps([examples, model_cfg.model_dump(), cfg.model_dump(exclude=bookkeeping), seed, str(init_from)],
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def _resumable_checkpoint(logs: Path, fingerprint: str) -> tuple[Path | None, dict]:
    """The newest complete checkpoint of this very M-step (same rows, config, seed), if any."""
    for ckpt in sorted(logs.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        saved = read_json(ckpt / RESUME_MARKER) if (ckpt / RESUME_MARKER).is_file() else {}
        if saved.get("fingerprint") == fingerprint:
            return ckpt, saved
    return None, {}


def checkpoint_every(cfg: TrainConfig) -> int:
    """Optimizer steps between M-step checkpoints; 0 for none."""
    if cfg.checkpoint_steps is not None:
        return cfg.checkpoint_steps
    return 10 if cfg.method == "lora" else 0


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (oneDNN's AVX512-BF16 or AMX kernels); read
    from /proc/cpuinfo, so elsewhere than Linux the answer is no."""
    flags = cpu_info()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(model_cfg: ModelConfig, cfg: TrainConfig, device: str) -> bool:
    """train.bf16 resolved for this device (see TrainConfig.bf16)."""
    if cfg.bf16 is None:
        return model_cfg.dtype == "bfloat16" and device != "cpu"
    if cfg.bf16 and device == "cpu" and not cpu_has_bf16():
        note("train.bf16: true, but this CPU has no bfloat16 units (avx512_bf16 or amx_bf16 in /proc/cpuinfo), "
             "where emulated bf16 is slower than float32: training in float32")
        return False
    return cfg.bf16


def load_for_training(model_cfg: ModelConfig, cfg: TrainConfig, device: str, init_from: Path | None):
    """The model to fine-tune: the base with fresh LoRA adapters, the base with the previous
    iterate's adapters (init: previous), or the base / previous full model."""
    if cfg.method == "full":
        model, tok = load(str(init_from) if init_from else model_cfg.name, model_cfg.dtype, device,
                          model_cfg.trust_remote_code, model_cfg.allow_pickle)
        return model, tok
    from peft import LoraConfig, PeftModel, get_peft_model

    model, tok = load(model_cfg.name, model_cfg.dtype, device, model_cfg.trust_remote_code, model_cfg.allow_pickle)
    if init_from is not None:
        model = PeftModel.from_pretrained(model, str(init_from), is_trainable=True)
    else:
        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                 target_modules=cfg.target_modules, task_type="CAUSAL_LM"))
    return model, tok


def train(rows: list[dict], model_cfg: ModelConfig, cfg: TrainConfig, out_dir: Path, seed: int, device: str,
          init_from: Path | None = None, quiet: bool = False):
    """Fine-tune on `rows`, save the iterate to `out_dir/model` (atomically), and return
    (trained model, tokenizer, stats). A LoRA model comes back unmerged: a caller that generates
    with it merges it (loop._Models.set); one that serves the saved adapter from an engine does not
    pay for the merge."""
    from datasets import Dataset
    from transformers import set_seed

    set_seed(seed)  # the adapter's initialisation too: a resumed run must train exactly the same
    model, tok = load_for_training(model_cfg, cfg, device, init_from)
    examples, dropped = tokenize(rows, tok, cfg.max_length)
    stats = {"train_examples": len(examples), "train_dropped_too_long": dropped}
    if not examples:
        raise ValueError("no training example fits train.max_length")
    model.train()
    logs, every = out_dir / "logs", checkpoint_every(cfg)
    fingerprint = _fingerprint(examples, model_cfg, cfg, seed, init_from)
    resume, saved = _resumable_checkpoint(logs, fingerprint) if every else (None, {})
    if resume is None and int(os.environ.get("RANK", "0")) == 0:
        shutil.rmtree(logs, ignore_errors=True)  # checkpoints of some other M-step (rows or config changed)
    args = TrainingArguments(
        output_dir=str(logs), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps, report_to=cfg.report_to or "none",
        save_strategy="steps" if every else "no", save_steps=every or 500, save_total_limit=2,
        seed=seed, data_seed=seed, use_cpu=device == "cpu", remove_unused_columns=False,
        label_names=["labels"], train_sampling_strategy="group_by_length", disable_tqdm=quiet,
        dataloader_num_workers=0, bf16=use_bf16(model_cfg, cfg, device),
    )
    trainer = WeightedTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                              data_collator=_Collator(tok.pad_token_id))
    trainer.fingerprint = fingerprint
    trainer.add_callback(_StopOnRequest(save=bool(every)))
    trainer.loss_sum = saved.get("loss_sum", 0.0)
    # a checkpoint written before the marker kept them has none: its steps' seconds are lost
    trainer.spent = tuple(float(saved.get(key, 0.0)) for key in ("seconds", "cpu_seconds", "paused_seconds"))
    if resume is not None:
        note(f"resuming the M-step from {resume.name} (every {every} steps a checkpoint is kept)")
    with stop.on_signals(), PhaseClock() as trainer.clock:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        seconds, cpu_seconds, paused = trainer.elapsed()
        if trainer.state.global_step < trainer.state.max_steps:  # stopped on request, not finished
            kept = f"a checkpoint at step {trainer.state.global_step} is kept" if every else \
                "train.checkpoint_steps is 0, so it starts over"
            # under DDP the request may have reached another rank only: this one stops all the same
            stop.check(f"during the M-step, after step {trainer.state.global_step} of "
                       f"{trainer.state.max_steps} ({kept})", asked="another process's request")
    trainer.clock = None
    trained_tokens = sum(e["length"] for e in examples) * cfg.epochs
    stats.update(
        train_loss=float(trainer.loss_sum) / max(result.global_step, 1), train_steps=int(result.global_step),
        train_tokens=int(trained_tokens), train_target_tokens=int(sum(sum(l != -100 for l in e["labels"]) for e in examples) * cfg.epochs),
        train_precision="bf16" if args.bf16 else "float32", train_seconds=round(seconds, 2),
        train_tokens_per_second=round(trained_tokens / seconds, 1) if seconds else None,
        train_cpu_seconds=round(cpu_seconds, 2),  # rank 0's; under the wall seconds x CPUs when shared
        train_paused_seconds=round(paused, 2),  # stopped (SIGSTOP/SIGTSTP), left out of train_seconds
        train_log=[h for h in trainer.state.log_history if "loss" in h],
        train_machine=machine() + (f" ({trainer.args.world_size} processes)" if trainer.args.world_size > 1 else ""),
    )
    if resume is not None:  # its seconds include the steps before the stop where its checkpoint kept them
        stats["train_resumed_at_step"] = int(resume.name.split("-")[-1])
    if not trainer.is_world_process_zero():  # under `accelerate launch`: one process writes
        return model, tok, stats
    save_iterate(model, tok, out_dir / "model")
    shutil.rmtree(logs, ignore_errors=True)  # the iterate is saved: its checkpoints are no longer needed
    return model, tok, stats


def weights_sha256(model_dir: Path) -> str:
    """One hash over an iterate's safetensors files (adapter or full model), in name order."""
    h = hashlib.sha256()
    for f in sorted(model_dir.glob("*.safetensors")):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def save_iterate(model, tok, dest: Path) -> None:
    """save_pretrained into a temporary folder, then rename: a crash leaves no half-written iterate."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with disk_errors(dest):
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def main(argv: list[str] | None = None) -> int:
    """`python -m emreason.train RUN_DIR ITERATION`: the M-step of one iteration from the files the
    loop wrote (run.json, iter_K/train.jsonl), in a process of its own: launched by `accelerate
    launch` for train.launcher, or plainly when an engine serves generation (loop._train_iterate).
    The main process saves the iterate and writes iter_K/.mstep_stats.json for the loop."""
    import argparse

    from .config import RunConfig
    from .store import read_json, read_jsonl, write_json

    ap = argparse.ArgumentParser(prog="python -m emreason.train")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("iteration", type=int)
    ap.add_argument("--init-from", type=Path, default=None)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--device", default=None, help="train on this device (default: accelerate's assignment)")
    args = ap.parse_args(argv)
    cfg = RunConfig.model_validate(read_json(args.run_dir / "run.json")["config"])
    it_dir = args.run_dir / f"iter_{args.iteration}"
    rows = read_jsonl(it_dir / "train.jsonl")
    if args.device:  # the loop's own M-step: the device and threads its process would have used
        device = args.device
        if cfg.backend.threads:
            torch.set_num_threads(cfg.backend.threads)
    else:  # under accelerate launch: one device per process
        device = "cpu" if os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" or not torch.cuda.is_available() \
            else f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    try:
        with stop.on_signals():  # also while it loads and saves: a stop then ends it cleanly
            _, _, stats = train(rows, cfg.model, cfg.train, it_dir, seed=cfg.data.seed + args.iteration,
                                device=device, init_from=args.init_from, quiet=args.quiet)
    except stop.Stopped as e:
        note(str(e))
        return stop.EXIT_STOPPED
    if int(os.environ.get("RANK", "0")) == 0:
        stats["train_processes"] = int(os.environ.get("WORLD_SIZE", "1"))
        write_json(it_dir / ".mstep_stats.json", stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
