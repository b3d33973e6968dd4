"""What bounds the llama.cpp E-step: prompt processing and decoding speed in isolation, decoding
over contiguous vs scattered sequence slots, a unified vs per-sequence KV cache, and the time split
inside a real E-step. The figures behind BENCHMARKS.md's llama.cpp section.

    .venv/bin/python benchmarks/llamacpp_steps.py --model smollm2-135m --weights float32
    .venv/bin/python benchmarks/llamacpp_steps.py --model smollm2-135m --weights gguf
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from emreason import data
from emreason.backends import open_backend
from emreason.config import BackendConfig, GenerationConfig, ModelConfig, PromptConfig, SamplerConfig
from emreason.samplers import sample_chunk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--weights", default="float32", choices=["float32", "gguf"])
    ap.add_argument("--questions", type=int, default=32)
    args = ap.parse_args()
    model_cfg = ModelConfig(name=args.model)

    def engine(unified: bool = False):
        b = open_backend(BackendConfig(name="llamacpp", engine_args={"weights": args.weights, "kv_unified": unified}),
                         model_cfg, batch_size=32)
        ctx = b._context(32, 400, 512)
        batch = b.L.llama_batch_init(512, 0, 1)

        def decode(items):  # (token, position, sequence, wants logits) -> seconds
            for n, (t, p, s, lg) in enumerate(items):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = t, p, 1
                batch.seq_id[n][0], batch.logits[n] = s, lg
            batch.n_tokens = len(items)
            start = time.perf_counter()
            assert b.L.llama_decode(ctx, batch) == 0
            return time.perf_counter() - start

        def last_logits(i):
            return np.ctypeslib.as_array(b.L.llama_get_logits_ith(ctx, i), shape=(b.n_vocab,)).copy()

        return b, decode, last_logits

    b, decode, _ = engine()
    pos = {}
    prefill = []
    for s in range(32):
        n = 140 + (s * 7) % 40
        prefill.append(decode([(100 + i % 50, i, s, i == n - 1) for i in range(n)]) / n)
        pos[s] = n

    def step(seqs) -> float:
        secs = decode([(5, pos[s], s, True) for s in seqs])
        for s in seqs:
            pos[s] += 1
        return len(seqs) / secs

    print(f"{args.model}, {args.weights} weights, {b.threads} threads")
    print(f"prompt processing (one prompt per call): {1 / np.mean(prefill[1:]):.0f} tokens/s")
    print(f"decoding step, 32 sequences in slots 0..31: {np.mean([step(range(32)) for _ in range(5)]):.0f} tokens/s")
    print(f"decoding step, 16 sequences in slots 0..15: {np.mean([step(range(16)) for _ in range(5)]):.0f} tokens/s")
    print(f"decoding step, 16 sequences in slots 0,2,..,30: {np.mean([step(range(0, 32, 2)) for _ in range(5)]):.0f} tokens/s")

    shift = {}
    for unified in (False, True):  # prompt 1's logits alone vs prefilled in one call beside prompt 0
        e, dec, logits_at = engine(unified)
        p0, p1 = [100 + i % 50 for i in range(150)], [120 + i % 40 for i in range(170)]
        dec([(t, i, 0, i == len(p1) - 1) for i, t in enumerate(p1)])
        alone = logits_at(len(p1) - 1)
        e.L.llama_memory_clear(e.L.llama_get_memory(e.ctx), True)
        dec([(t, i, 0, False) for i, t in enumerate(p0)] + [(t, i, 1, i == len(p1) - 1) for i, t in enumerate(p1)])
        shift[unified] = np.abs(alone - logits_at(len(p0) + len(p1) - 1)).max()
    print(f"max logit shift from a neighbour sequence: separate cells {shift[False]:.3g}, unified cache {shift[True]:.3g}")

    exs = data.load("arc_easy", "train", limit=args.questions, seed=0)
    b = open_backend(BackendConfig(name="llamacpp", engine_args={"weights": args.weights}), model_cfg, batch_size=32)
    original, split = b.L.llama_decode, {"prompt": [0.0, 0], "step": [0.0, 0]}

    def timed(ctx, batch):
        start = time.perf_counter()
        rc = original(ctx, batch)
        kind = "prompt" if batch.n_tokens > 1 and batch.seq_id[0][0] == batch.seq_id[1][0] else "step"
        split[kind][0] += time.perf_counter() - start
        split[kind][1] += batch.n_tokens
        return rc

    b.L.llama_decode = timed
    try:
        start = time.perf_counter()
        records = sample_chunk(b, exs, SamplerConfig(name="pps"), GenerationConfig(max_new_tokens=128, batch_size=32),
                               PromptConfig(cot_prefix="Let's think step by step."), 0, 1, 0)
        secs = time.perf_counter() - start
    finally:
        b.L.llama_decode = original
    print(f"E-step, PPS on {len(exs)} questions: {secs:.1f} s, {sum(r['tokens'] for r in records)} sampled tokens; "
          f"prompts {split['prompt'][1]} tokens at {split['prompt'][1] / split['prompt'][0]:.0f} tokens/s, "
          f"decoding {split['step'][1]} tokens at {split['step'][1] / split['step'][0]:.0f} tokens/s")


if __name__ == "__main__":
    main()
