"""M-step throughput on a GPU: emreason's trainer (the study's LoRA settings) on real accepted samples,
for a model architecture given by its config and tokenizer folder, with random weights (trained
tokens/s does not depend on the weights). For GPU machines without network access or room for the
real weights; the CPU figure to compare with is the study's own (train_stats.json of a finished cell).

    python benchmarks/gpu_mstep.py --arch DIR_WITH_config.json_AND_tokenizer --batch-size 2 8 32 \
        --rows results/paper/qwen2.5-coder-1.5b-arc_easy-pps-s0/iter_2/train.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from emreason.config import ModelConfig, TrainConfig
from emreason.train import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[2, 8, 32])
    ap.add_argument("--epochs", type=float, default=1.0)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with gzip.open(args.rows, "rt") if args.rows.endswith(".gz") else open(args.rows) as f:
        rows = [json.loads(line) for line in f]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.arch), dtype=torch.bfloat16)
        params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(model_dir)
        AutoTokenizer.from_pretrained(args.arch).save_pretrained(model_dir)
        del model
        model_cfg = ModelConfig(name=str(model_dir), dtype="bfloat16")
        print(f"{args.arch}: {params / 1e6:.0f}M params (random), bf16, {device} "
              f"{torch.cuda.get_device_name() if device == 'cuda' else ''}; {len(rows)} rows from {args.rows}")
        print("| batch | steps | trained tokens | seconds | tokens/s | peak GPU memory (GB) |")
        print("|---|---|---|---|---|---|")
        for bs in args.batch_size:
            cfg = TrainConfig(epochs=args.epochs, batch_size=bs, lora_r=16, max_length=1024, logging_steps=1000)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            _, _, stats = train(rows, model_cfg, cfg, Path(tmp) / f"out{bs}", seed=0, device=device, quiet=True)
            total = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else float("nan")
            print(f"| {bs} | {stats['train_steps']} | {stats['train_tokens']} | {stats['train_seconds']:.1f} "
                  f"(with loading and saving {total:.1f}) | {stats['train_tokens_per_second']:.0f} | {peak:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
