"""Sampling throughput of the transformers backend on a GPU, for a model architecture given by its
config and tokenizer folder, with random weights (tokens/s does not depend on the weights; a random
model never writes the answer line, so every sequence runs to max_new_tokens: a pure decode load).
For GPU machines without network access or room for the real weights; with the real weights use
benchmarks/gpu_smoke.sh.

    python benchmarks/gpu_throughput.py --arch DIR_WITH_config.json_AND_tokenizer --prompts 256 --batch-size 128
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from emreason import data
from emreason import prompts as P
from emreason.backends import SamplingParams
from emreason.backends.hf import HFBackend
from emreason.config import PromptConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True)
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[1, 32, 128])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = AutoConfig.from_pretrained(args.arch)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, args.dtype)).to(device).eval()
    tok = AutoTokenizer.from_pretrained(args.arch)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    params = sum(p.numel() for p in model.parameters())
    exs = data.load("arc_easy", "train", limit=args.prompts, seed=0)
    print(f"{args.arch}: {params / 1e6:.0f}M params (random), {args.dtype}, {device} "
          f"{torch.cuda.get_device_name() if device == 'cuda' else ''}")
    for bs in args.batch_size:
        backend = HFBackend(model, tok, batch_size=bs, device=device)
        texts = [P.prompt_text(backend, ex, "cot", PromptConfig()) for ex in exs[: max(bs, min(args.prompts, 4 * bs))]]
        sp = SamplingParams(n=1, temperature=0.7, max_new_tokens=args.max_new_tokens, stop_at_answer=False)
        backend.generate(texts[:bs], sp)  # warm-up (kernels, static cache)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = backend.generate(texts, sp)
        if device == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - start
        tokens = sum(g[0].tokens for g in out)
        print(f"batch {bs:>4}: {len(texts)} prompts, {tokens} tokens in {secs:.1f} s = {tokens / secs:.0f} tokens/s")


if __name__ == "__main__":
    main()
