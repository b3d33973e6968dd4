"""M-step throughput: emreason's trainer vs TRL's SFTTrainer with its defaults, on the same accepted
samples (a committed run's train.jsonl), the same model, LoRA settings, batch size, epochs and
learning rate. Trained tokens/s = (prompt + completion tokens) x epochs / wall time of train().

    .venv/bin/python benchmarks/mstep_throughput.py --rows results/issue3-smollm2-arc_easy/pps/iter_2/train.jsonl.gz --limit 48

`--full-logits` also times emreason's trainer with the vocabulary projection at every position (as
before the prompt positions were skipped), after the trimmed run. `--bf16` also times it with
train.bf16 (bfloat16 autocast; needs a CPU with bf16 units); `--no-trl` skips TRL (for big models):

    .venv/bin/python benchmarks/mstep_throughput.py --model qwen2.5-coder-1.5b --no-trl --bf16 --limit 12 \
        --rows results/pilot-1.5b-256tok/qwen2.5-coder-1.5b-arc_easy-pps-s0/iter_1/train.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from emreason.config import ModelConfig, TrainConfig
from emreason.models import load
from emreason.train import train


def read_rows(path: str, limit: int) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f][:limit]


def trl_sft(rows, model_cfg, cfg: TrainConfig, out: Path) -> tuple[float, int, float]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(0)
    model, tok = load(model_cfg.name)
    ds = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    args = SFTConfig(output_dir=str(out), per_device_train_batch_size=cfg.batch_size, num_train_epochs=cfg.epochs,
                     learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, logging_steps=cfg.logging_steps,
                     report_to="none", save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
                     max_length=cfg.max_length)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                         peft_config=LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                target_modules=cfg.target_modules, task_type="CAUSAL_LM"))
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * cfg.epochs
    start = time.perf_counter()
    result = trainer.train()
    return time.perf_counter() - start, tokens, float(result.training_loss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", default="results/issue3-smollm2-arc_easy/pps/iter_2/train.jsonl.gz")
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--full-logits", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--no-trl", action="store_true")
    args = ap.parse_args()
    rows = read_rows(args.rows, args.limit)
    model_cfg = ModelConfig(name=args.model)
    cfg = TrainConfig(epochs=args.epochs, batch_size=4, lora_r=16, logging_steps=1000)
    with tempfile.TemporaryDirectory() as tmp:
        # TRL first: whichever runs first pays the process's warm-up (oneDNN kernels, allocator).
        if not args.no_trl:
            trl_s, trl_tokens, trl_loss = trl_sft(rows, model_cfg, cfg, Path(tmp) / "trl")
        _, _, ours = train(rows, model_cfg, cfg, Path(tmp) / "ours", seed=0, device="cpu", quiet=True)
        bf16 = None
        if args.bf16:
            _, _, bf16 = train(rows, model_cfg, cfg.model_copy(update={"bf16": True}), Path(tmp) / "bf16", seed=0,
                               device="cpu", quiet=True)
        full = None
        if args.full_logits:
            import emreason.train as T

            T._takes_logits_to_keep = lambda model: False
            _, _, full = train(rows, model_cfg, cfg, Path(tmp) / "full", seed=0, device="cpu", quiet=True)
    ours_tps = ours["train_tokens"] / ours["train_seconds"]
    trl_tps = trl_tokens / trl_s if not args.no_trl else ours_tps  # without TRL: ratios are to emreason float32
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{len(rows)} accepted samples from {args.rows}; {args.model}, LoRA r={cfg.lora_r}, batch {cfg.batch_size}, "
          f"{cfg.epochs:g} epoch(s)")
    print(f"| M-step | trained tokens | seconds | tokens/s | loss | vs {'emreason float32' if args.no_trl else 'TRL'} |")
    print("|---|---|---|---|---|---|")
    if not args.no_trl:
        print(f"| TRL SFTTrainer (defaults: gradient checkpointing, no packing) | {trl_tokens} | {trl_s:.1f} | {trl_tps:.1f} | {trl_loss:.3f} | 1.00x |")
    print(f"| emreason train (length-grouped batches, no checkpointing) | {ours['train_tokens']} | {ours['train_seconds']:.1f} | "
          f"{ours_tps:.1f} | {ours['train_loss']:.3f} | {ours_tps / trl_tps:.2f}x |")
    if bf16:
        tps = bf16["train_tokens"] / bf16["train_seconds"]
        print(f"| emreason train, train.bf16 (autocast) | {bf16['train_tokens']} | {bf16['train_seconds']:.1f} | "
              f"{tps:.1f} | {bf16['train_loss']:.3f} | {tps / trl_tps:.2f}x |")
    if full:
        full_tps = full["train_tokens"] / full["train_seconds"]
        print(f"| emreason train, logits at every position | {full['train_tokens']} | {full['train_seconds']:.1f} | "
              f"{full_tps:.1f} | {full['train_loss']:.3f} | {full_tps / trl_tps:.2f}x |")


if __name__ == "__main__":
    main()
