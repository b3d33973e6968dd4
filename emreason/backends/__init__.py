"""Generation engines behind one small interface.

A backend turns chat-formatted prompts into samples (n per prompt) and scores continuations. The
samplers and the evaluator only see this interface, so moving from a laptop CPU to a GPU changes
`backend.name` in the config and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..prompts import answer_is_complete


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    """Samples per prompt."""
    temperature: float = 0.7
    """0 is greedy (then n must be 1)."""
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    """Same prompts, params and seed -> the same samples."""
    stop_at_answer: bool = True
    """Stop a sequence once its answer line ("The answer is (X)") is complete."""


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    """Generated tokens, excluding the end-of-sequence token."""
    truncated: bool
    """Cut by max_new_tokens before an end-of-sequence token or a complete answer line."""


class Backend(Protocol):
    name: str

    def chat(self, user: str, system: str | None = None) -> str:
        """Render one user turn with the model's chat template, ready for the assistant's reply."""

    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[Generation]]:
        """`params.n` generations for each prompt, in prompt order."""

    def loglik(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Sum of log p(continuation | context) for each (context, continuation)."""


def finish_generation(tok, end_ids: set[int], ids: list[int], params: SamplingParams) -> Generation:
    """A sampled id sequence as a Generation: cut at the first end-of-sequence (or padding) id,
    decoded; truncated when max_new_tokens cut it before a complete answer line."""
    count = next((k for k, t in enumerate(ids) if t in end_ids), len(ids))
    text = tok.decode(ids[:count], skip_special_tokens=True)
    truncated = count >= params.max_new_tokens and not (params.stop_at_answer and answer_is_complete(text))
    return Generation(text=text, tokens=count, truncated=truncated)


def render_chat(tok, user: str, system: str | None = None) -> str:
    """One user turn in the tokenizer's chat template, ready for the assistant's reply."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    if tok.chat_template:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['content']}\n\n" for m in messages)


class ChatOnly:
    """The chat template without a model: what building training rows needs (no weights loaded)."""

    def __init__(self, model_cfg):
        from transformers import AutoTokenizer

        from ..models import resolve

        self.tok = AutoTokenizer.from_pretrained(resolve(model_cfg.name, model_cfg.allow_pickle),
                                                 trust_remote_code=model_cfg.trust_remote_code)

    def chat(self, user: str, system: str | None = None) -> str:
        return render_chat(self.tok, user, system)


def open_backend(cfg, model_cfg, source=None, batch_size: int = 16):
    """A backend serving `source` (an iterate folder: LoRA adapter or full model) or, when None,
    the configured base model. `cfg` is a BackendConfig, `model_cfg` a ModelConfig."""
    if cfg.name == "hf":
        import torch

        from ..models import load, pick_device
        from .hf import HFBackend

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = pick_device(cfg.device)
        model, tok = load(str(source) if source else model_cfg.name, model_cfg.dtype, device,
                          model_cfg.trust_remote_code, model_cfg.allow_pickle)
        return HFBackend(model, tok, batch_size=batch_size, device=device)
    if cfg.name == "llamacpp":
        from .llamacpp import LlamaCppBackend

        backend = LlamaCppBackend(model_cfg, threads=cfg.threads, engine_args=cfg.engine_args, batch_size=batch_size)
    elif cfg.name == "vllm":
        from .vllm import VLLMBackend

        backend = VLLMBackend(model_cfg, engine_args=cfg.engine_args, batch_size=batch_size)
    else:
        raise ValueError(f"unknown backend {cfg.name!r}")
    backend.set_iterate(source)
    return backend
