"""E-step throughput: emreason's batched sampler vs the naive one-generate-per-question loop that
STaR re-implementations use, vs the compute bound (2 x params FLOPs per token at the measured
matmul rate). Same model, same ARC-Easy training prompts (PPS hinted prompts with the shipped
CoT prefix), same max_new_tokens and temperature. Prints a table; nothing is timed in tests.

    .venv/bin/python benchmarks/estep_throughput.py --model smollm2-135m --questions 64 --naive-questions 8
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from emreason import data
from emreason import prompts as P
from emreason.backends.hf import HFBackend
from emreason.config import GenerationConfig, PromptConfig, SamplerConfig
from emreason.models import load
from emreason.samplers import estep_summary, sample_chunk


def matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--naive-questions", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    model, tok = load(args.model)
    params = sum(p.numel() for p in model.parameters())
    prompts_cfg = PromptConfig(cot_prefix="Let's think step by step.")
    gen = GenerationConfig(temperature=0.7, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    exs = data.load("arc_easy", "train", limit=args.questions, seed=0)
    backend = HFBackend(model, tok, batch_size=args.batch_size)

    start = time.perf_counter()
    records = sample_chunk(backend, exs, SamplerConfig(name="pps"), gen, prompts_cfg, seed=0, iteration=1, chunk=0)
    ours_s = time.perf_counter() - start
    s = estep_summary(records, len(exs))

    naive_exs = exs[: args.naive_questions]
    texts = [P.prompt_text(backend, ex, "hinted", prompts_cfg) for ex in naive_exs]
    naive_tokens = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for i, t in enumerate(texts):  # one generate per question, batch 1, default cache, no early stop
            enc = tok(t, return_tensors="pt", add_special_tokens=False)
            torch.manual_seed(i)
            out = model.generate(**enc, do_sample=True, temperature=0.7, top_p=1.0, top_k=0,
                                 max_new_tokens=args.max_new_tokens, pad_token_id=tok.pad_token_id)
            naive_tokens += out.shape[1] - enc["input_ids"].shape[1]
    naive_s = time.perf_counter() - start

    gflops = matmul_gflops()
    bound = gflops * 1e9 / (2 * params)
    ours_tps = s["sampled_tokens"] / ours_s
    naive_tps = naive_tokens / naive_s
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"model {args.model}: {params / 1e6:.1f}M params; matmul {gflops:.1f} GFLOP/s -> compute bound {bound:.0f} tok/s")
    print(f"| E-step (PPS, {args.max_new_tokens} max tokens) | questions | sampled tokens | seconds | tokens/s | accepted/min | vs naive |")
    print("|---|---|---|---|---|---|---|")
    print(f"| naive loop (generate per question, batch 1) | {len(naive_exs)} | {naive_tokens} | {naive_s:.1f} | {naive_tps:.1f} | – | 1.00x |")
    print(f"| emreason HF backend (batch {args.batch_size}, static cache, stop at answer) | {len(exs)} | "
          f"{s['sampled_tokens']} | {ours_s:.1f} | {ours_tps:.1f} | {s['accepted'] / ours_s * 60:.1f} | {ours_tps / naive_tps:.2f}x |")
    print(f"| compute bound | | | | {bound:.0f} | | {bound / naive_tps:.1f}x |")


if __name__ == "__main__":
    main()
