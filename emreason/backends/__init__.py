"""Generation engines behind one small interface.

A backend turns chat-formatted prompts into samples (n per prompt) and scores continuations. The
samplers and the evaluator only see this interface, so moving from a laptop CPU to a GPU changes
`backend.name` in the config and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


def make_backend(cfg, model_cfg):
    """Build the configured backend around the configured model (loads the weights)."""
    if cfg.name == "hf":
        from .hf import HFBackend

        return HFBackend.from_config(cfg, model_cfg)
    raise ValueError(f"unknown backend {cfg.name!r}")
