"""E-step throughput: emreason's sampler on each backend vs the naive one-`generate`-per-question
loop that STaR re-implementations use, vs the compute bound (2 x params FLOPs per token at the
measured fp32 matmul rate). Same model, same ARC-Easy training prompts (PPS hinted prompts with
the shipped CoT prefix), same max_new_tokens and temperature. Prints a Markdown table.

    .venv/bin/python benchmarks/estep_throughput.py --model smollm2-135m --questions 64 --naive-questions 8
    .venv/bin/python benchmarks/estep_throughput.py --model qwen2.5-coder-1.5b --questions 16 \
        --naive-questions 2 --backends llamacpp
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from emreason import data
from emreason import prompts as P
from emreason.backends import ChatOnly, open_backend
from emreason.config import BackendConfig, GenerationConfig, ModelConfig, PromptConfig, SamplerConfig
from emreason.samplers import estep_summary, sample_chunk


def matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def naive_loop(model_cfg, texts, max_new_tokens) -> tuple[int, float]:
    """One generate per question, batch 1, default (dynamic) cache, no early stop."""
    from emreason.models import load

    model, tok = load(model_cfg.name)
    tokens = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for i, t in enumerate(texts):
            enc = tok(t, return_tensors="pt", add_special_tokens=False)
            torch.manual_seed(i)
            out = model.generate(**enc, do_sample=True, temperature=0.7, top_p=1.0, top_k=0,
                                 max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
            tokens += out.shape[1] - enc["input_ids"].shape[1]
    return tokens, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--naive-questions", type=int, default=8, help="0 skips the naive loop")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--backends", default="hf,llamacpp")
    ap.add_argument("--weights", default="float32", help="llamacpp: float32 (the transformers weights) or gguf (its quantization)")
    args = ap.parse_args()

    model_cfg = ModelConfig(name=args.model)
    prompts_cfg = PromptConfig(cot_prefix="Let's think step by step.")
    gen = GenerationConfig(temperature=0.7, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    exs = data.load("arc_easy", "train", limit=args.questions, seed=0)
    chat = ChatOnly(model_cfg)
    from safetensors import safe_open

    from emreason.models import resolve

    with safe_open(f"{resolve(args.model)}/model.safetensors", "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())

    rows = []
    naive_tps = None
    if args.naive_questions:
        texts = [P.prompt_text(chat, ex, "hinted", prompts_cfg) for ex in exs[: args.naive_questions]]
        tokens, secs = naive_loop(model_cfg, texts, args.max_new_tokens)
        naive_tps = tokens / secs
        prompt_tokens = sum(len(chat.tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
        rows.append(("naive loop (HF generate per question, batch 1)", len(texts), tokens, secs, None, prompt_tokens))
    for name in args.backends.split(","):
        engine_args = {"weights": args.weights} if name == "llamacpp" else {}
        backend = open_backend(BackendConfig(name=name, engine_args=engine_args), model_cfg, batch_size=args.batch_size)
        start = time.perf_counter()
        records = sample_chunk(backend, exs, SamplerConfig(name="pps"), gen, prompts_cfg, seed=0, iteration=1, chunk=0)
        secs = time.perf_counter() - start
        s = estep_summary(records, len(exs))
        by_id = {ex.id: ex for ex in exs}
        prompt_tokens = sum(len(chat.tok(P.prompt_text(chat, by_id[r["question_id"]], "hinted" if r["hinted"] else "cot",
                                                       prompts_cfg), add_special_tokens=False)["input_ids"]) for r in records)
        label = f"{name}, {args.weights} weights" if name == "llamacpp" else name
        rows.append((f"emreason {label} backend (batch {args.batch_size}, stop at answer)", len(exs),
                     s["sampled_tokens"], secs, s["accepted"] / secs * 60, prompt_tokens))
        del backend

    gflops = matmul_gflops()
    bound = gflops * 1e9 / (2 * params)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"model {args.model}: {params / 1e6:.1f}M params; fp32 matmul {gflops:.1f} GFLOP/s -> compute bound {bound:.0f} tok/s")
    print(f"| E-step (PPS, {args.max_new_tokens} max tokens) | questions | sampled tokens | seconds | sampled tokens/s | "
          "accepted/min | vs naive | prompt + sampled tokens/s | share of bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, q, tokens, secs, apm, prompt_tokens in rows:
        tps = tokens / secs
        rel = f"{tps / naive_tps:.2f}x" if naive_tps else "–"
        total = (tokens + prompt_tokens) / secs
        print(f"| {label} | {q} | {tokens} | {secs:.1f} | {tps:.1f} | {'–' if apm is None else f'{apm:.1f}'} | {rel} | "
              f"{total:.0f} | {total / bound:.2f} |")
    print(f"| compute bound (2 x params FLOPs per token at the fp32 matmul rate) | | | | | | | {bound:.0f} | 1.00 |")


if __name__ == "__main__":
    main()
