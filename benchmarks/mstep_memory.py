"""M-step memory: peak resident memory of the first optimizer steps (group_by_length puts the longest
batch first), sampled every 0.2 s, for a micro-batch size and accumulation count. Run it before a
long study on a machine with little memory: the OOM killer ends a run without a Python error.

    .venv/bin/python benchmarks/mstep_memory.py --batch-size 4 --grad-accum 1 --steps 3 \\
        --rows runs/paper/qwen2.5-coder-1.5b-arc_easy-pps-s0/iter_1/train.jsonl --bf16
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

import emreason.train as T
from emreason.config import ModelConfig, TrainConfig


def rss_gb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**30


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--rows", required=True, help="a run's iter_K/train.jsonl(.gz)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    opener = gzip.open if args.rows.endswith(".gz") else open
    with opener(args.rows, "rt") as f:
        rows = [json.loads(line) for line in f]
    peak = [0.0]

    def watch():
        while True:
            peak[0] = max(peak[0], rss_gb())
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    start = time.perf_counter()

    class Report(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            print(f"step {state.global_step}: resident {rss_gb():.1f} GB, peak so far {peak[0]:.1f} GB, "
                  f"{time.perf_counter() - start:.0f} s since start (model load included)", flush=True)
            control.should_training_stop = state.global_step >= args.steps

    init = T.WeightedTrainer.__init__

    def with_report(self, *a, **k):
        init(self, *a, **k)
        self.add_callback(Report())

    T.WeightedTrainer.__init__ = with_report
    cfg = TrainConfig(epochs=2, batch_size=args.batch_size, grad_accum=args.grad_accum, max_length=args.max_length,
                      bf16=args.bf16 or None, checkpoint_steps=0, logging_steps=1000)
    print(f"{args.model}, {len(rows)} rows from {args.rows}, micro-batch {args.batch_size} x {args.grad_accum} "
          f"accumulation, max_length {args.max_length}, bf16 {args.bf16}")
    with tempfile.TemporaryDirectory() as tmp:
        T.train(rows, ModelConfig(name=args.model), cfg, Path(tmp), seed=1, device="cpu", quiet=True)


if __name__ == "__main__":
    main()
