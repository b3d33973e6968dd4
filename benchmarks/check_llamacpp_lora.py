"""Does a LoRA iterate move llama.cpp the way it moves transformers, for MODEL and these weights?

Run before trusting the llama.cpp backend with a model the tests do not load (they check SmolLM2 on
float32 weights): a random LoRA adapter (all-linear) is applied in both engines and the
log-likelihood of a fixed answer is compared, untuned and tuned, with the next-token KL.

    .venv/bin/python benchmarks/check_llamacpp_lora.py --model qwen2.5-coder-1.5b --weights gguf
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, get_peft_model

from emreason.backends import open_backend
from emreason.config import BackendConfig, ModelConfig
from emreason.models import load

QUESTION = "Which gas do plants take in from the air? (A) oxygen (B) carbon dioxide"
ANSWER = " Plants take in carbon dioxide through their leaves to make sugar. The answer is (B)"


def next_token_kl(hf, lc, ids: list[int]) -> tuple[float, float, float]:
    with torch.no_grad():
        a = torch.log_softmax(hf.model(torch.tensor([ids])).logits[0].double(), -1).numpy()
    b = lc.logits(ids).astype(np.float64)
    b -= b.max(-1, keepdims=True)
    b -= np.log(np.exp(b).sum(-1, keepdims=True))
    kl = (np.exp(a) * (a - b)).sum(-1)
    return float(kl.mean()), float(kl.max()), float((a.argmax(-1) == b.argmax(-1)).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--weights", choices=["f32", "gguf"], default="gguf")
    args = ap.parse_args()
    m = ModelConfig(name=args.model)
    engine_args = {"weights": "gguf"} if args.weights == "gguf" else {}
    hf = open_backend(BackendConfig(name="hf"), m, batch_size=1)
    lc = open_backend(BackendConfig(name="llamacpp", engine_args=engine_args), m, batch_size=1)
    ctx = hf.chat(QUESTION)
    ids = hf.tok(ctx + ANSWER, add_special_tokens=False)["input_ids"]
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load(args.model)
        torch.manual_seed(0)
        peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
        for n, p in peft.named_parameters():  # a moderate random change, not a destroyed model
            if "lora_B" in n:
                p.data.mul_(0.3)
        peft.save_pretrained(Path(tmp) / "adapter")
        del peft, model
        base_hf, base_lc = hf.loglik([(ctx, ANSWER)])[0], lc.loglik([(ctx, ANSWER)])[0]
        kl_base = next_token_kl(hf, lc, ids)
        hf_tuned = open_backend(BackendConfig(name="hf"), m, Path(tmp) / "adapter", batch_size=1)
        lc.set_iterate(Path(tmp) / "adapter")
        tuned_hf, tuned_lc = hf_tuned.loglik([(ctx, ANSWER)])[0], lc.loglik([(ctx, ANSWER)])[0]
        kl_tuned = next_token_kl(hf_tuned, lc, ids)
    print(f"{args.model}, llama.cpp weights {args.weights}; answer of {len(ids) - len(hf.tok(ctx, add_special_tokens=False)['input_ids'])} tokens")
    print("| | transformers | llama.cpp | next-token KL mean / max | same top token |")
    print("|---|---|---|---|---|")
    print(f"| base model log p(answer) | {base_hf:.3f} | {base_lc:.3f} | {kl_base[0]:.2e} / {kl_base[1]:.2e} | {kl_base[2]:.2f} |")
    print(f"| with the random LoRA | {tuned_hf:.3f} | {tuned_lc:.3f} | {kl_tuned[0]:.2e} / {kl_tuned[1]:.2e} | {kl_tuned[2]:.2f} |")
    print(f"LoRA shift: transformers {tuned_hf - base_hf:+.3f}, llama.cpp {tuned_lc - base_lc:+.3f}")


if __name__ == "__main__":
    main()
