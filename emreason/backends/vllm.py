"""The vLLM backend: the E-step on GPUs.

One `vllm.LLM` engine holds the base model for the whole run; an iterate is served as a LoRA
adapter (`LoRARequest`, a new id per iterate) or, for full fine-tuning, by reloading the engine on
the saved weights. While the M-step trains, the engine sleeps (`enable_sleep_mode`: weights moved to
CPU memory, KV cache freed), so sampling and training share one GPU.

Sampling uses one request per (prompt, sample) with its own seed, derived from (seed, prompt index,
sample index) like the other backends, so what a prompt draws does not depend on its batch; the
answer-line stop is a set of stop strings ("The answer is (A)", ...), kept in the output.
Needs the optional extra: `pip install 'emreason[vllm]'` (Linux with CUDA).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EmreasonError
from ..prompts import answer_is_complete
from . import Generation, SamplingParams, render_chat

_LETTERS = "ABCDEFGHIJ"


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_cfg, engine_args: dict | None = None, batch_size: int = 256, seed: int = 0):
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise EmreasonError("backend.name is vllm but vLLM is not installed: pip install 'emreason[vllm]' "
                                "(needs Linux and a CUDA GPU), or use backend hf") from None
        from ..models import resolve

        self.model_cfg, self.engine_args, self.batch_size, self.seed = model_cfg, dict(engine_args or {}), batch_size, seed
        self.base = resolve(model_cfg.name, model_cfg.allow_pickle)
        self.source: Path | None = None
        self.lora = None
        self._lora_ids: dict[str, int] = {}
        self.llm = self._engine(self.base)
        self.tok = self.llm.get_tokenizer()
        self.asleep = False

    def _engine(self, path: str):
        from vllm import LLM

        args = dict(dtype=self.model_cfg.dtype if self.model_cfg.dtype != "float32" else "auto",
                    trust_remote_code=self.model_cfg.trust_remote_code, seed=self.seed, enable_lora=True,
                    max_lora_rank=64, enable_sleep_mode=True, gpu_memory_utilization=0.5)
        args.update(self.engine_args)
        self.can_sleep = bool(args["enable_sleep_mode"])  # vLLM's CPU build has no sleep mode
        return LLM(model=path, **args)

    def set_iterate(self, source: Path | None) -> None:
        """Serve the base model (None) or an iterate folder: a LoRA adapter, or full weights."""
        self.wake()
        self.source = source
        self.lora = None
        if source is None:
            return
        if (Path(source) / "adapter_config.json").is_file():
            from vllm.lora.request import LoRARequest

            key = str(Path(source).resolve())
            lora_id = self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
            self.lora = LoRARequest(f"iterate-{lora_id}", lora_id, key)
        else:  # full fine-tuning: reload the engine on the saved weights
            del self.llm
            self.llm = self._engine(str(source))

    def sleep(self) -> None:
        """Free the GPU for the M-step (weights to CPU memory, KV cache dropped)."""
        if not self.asleep and self.can_sleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def chat(self, user: str, system: str | None = None) -> str:
        return render_chat(self.tok, user, system)

    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[Generation]]:
        from vllm import SamplingParams as VSP
        from vllm.inputs import TokensPrompt

        self.wake()
        if params.temperature == 0 and params.n > 1:
            raise ValueError("greedy decoding (temperature 0) gives one sample per prompt; set n=1")
        stops = [f"The answer is ({x})" for x in _LETTERS] if params.stop_at_answer else None
        requests, sampling = [], []
        for i, p in enumerate(prompts):
            ids = self.tok(p, add_special_tokens=False)["input_ids"]  # the chat template already holds BOS
            for j in range(params.n):
                requests.append(TokensPrompt(prompt_token_ids=ids))
                sampling.append(VSP(n=1, temperature=params.temperature, top_p=params.top_p,
                                    max_tokens=params.max_new_tokens, seed=(params.seed * 1_000_003 + i * 1009 + j) % 2**31,
                                    stop=stops, include_stop_str_in_output=True))
        outs = self.llm.generate(requests, sampling, lora_request=self.lora, use_tqdm=False)
        result: list[list[Generation]] = [[] for _ in prompts]
        eos = self.tok.eos_token_id
        for r, out in enumerate(outs):
            o = out.outputs[0]
            text = o.text
            truncated = o.finish_reason == "length" and not (params.stop_at_answer and answer_is_complete(text))
            tokens = len([t for t in o.token_ids if t != eos])
            result[r // params.n].append(Generation(text=text, tokens=tokens, truncated=truncated))
        if progress is not None:
            progress.update(len(prompts))
        return result

    def loglik(self, pairs: list[tuple[str, str]]) -> list[float]:
        from vllm import SamplingParams as VSP
        from vllm.inputs import TokensPrompt

        self.wake()
        requests, spans = [], []
        for ctx, cont in pairs:
            c = self.tok(ctx, add_special_tokens=True)["input_ids"]
            k = self.tok(cont, add_special_tokens=False)["input_ids"]
            requests.append(TokensPrompt(prompt_token_ids=c + k))
            spans.append((len(c), len(c) + len(k)))
        outs = self.llm.generate(requests, VSP(max_tokens=1, prompt_logprobs=0), lora_request=self.lora, use_tqdm=False)
        scores = []
        for out, (a, b) in zip(outs, spans):
            ids = out.prompt_token_ids
            scores.append(sum(out.prompt_logprobs[t][ids[t]].logprob for t in range(a, b)))
        return scores

