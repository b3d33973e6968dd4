"""A scripted backend: returns outputs from a function of the prompt, records every call."""

from __future__ import annotations

from emreason.backends import Generation, SamplingParams


class ScriptedBackend:
    name = "scripted"

    def __init__(self, respond):
        self.respond = respond  # (prompt, sample_index, call_index) -> text
        self.calls: list[tuple[list[str], SamplingParams]] = []
        self.batch_size = 8

    def chat(self, user: str, system: str | None = None) -> str:
        return f"<user>{user}</user><assistant>"

    def generate(self, prompts, params: SamplingParams, progress=None):
        call = len(self.calls)
        self.calls.append((list(prompts), params))
        out = []
        for p in prompts:
            texts = [self.respond(p, j, call) for j in range(params.n)]
            out.append([Generation(t, len(t.split()), False) for t in texts])
            if progress is not None:
                progress.update(1)
        return out

    def loglik(self, pairs):
        return [-float(len(cont)) for _, cont in pairs]
