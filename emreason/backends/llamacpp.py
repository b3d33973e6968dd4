"""The llama.cpp backend: the E-step on a GGUF, with LoRA iterates as llama.cpp adapters.

By default the model is the alias's GGUF dequantized to float32 once (`f32_gguf`): exactly the
weights the transformers path computes with, and faster in llama.cpp on AVX2 CPUs than the Q4
file; `engine_args: {weights: gguf}` runs the file's own quantization instead. An iterate is its
LoRA adapter, converted once to llama.cpp's GGUF adapter format and applied at load time, so
nothing is re-quantized. Prompts are tokenized and outputs decoded with the model's transformers
tokenizer, so both backends see the same tokens.

Decoding is continuous batching over llama.cpp sequences (each with its own cells): up to
`batch_size` sequences decode together and a finished one frees its slot for the next prompt at
once. Each (prompt, sample) draws from its own random stream, seeded by (seed, prompt index,
sample index): the same call draws the same samples, and batching changes a draw only through
rounding (llama.cpp's matmul kernels differ with the number of rows).

Needs the optional extra: `pip install 'emreason[llamacpp]'` (builds llama.cpp, ~5 minutes).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
from pathlib import Path

import numpy as np
from scipy.special import log_softmax

from ..errors import EmreasonError
from ..prompts import answer_is_complete
from . import Generation, SamplingParams, finish_generation, render_chat

_HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down"}


def base_gguf(model_dir: Path) -> Path | None:
    """The GGUF a dequantized cache folder was made from (written there by models.dequantize)."""
    src = Path(model_dir) / "emreason_source.json"
    if src.is_file():
        path = Path(json.loads(src.read_text())["gguf"])
        return path if path.is_file() else None
    return None


def _write_gguf(writer, out: Path) -> Path:
    """Write a GGUFWriter opened on `out`.tmp, then rename: a crash leaves no half-written file."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(str(out) + ".tmp", out)
    return out


def f32_gguf(src: Path) -> Path:
    """The GGUF with every tensor dequantized to float32, once, beside the original.

    These are exactly the weights the transformers path computes with (it dequantizes the same
    file), so both backends run the same model; and on CPUs without AVX-512 llama.cpp's batched
    float32 matmuls are faster than its Q4_1 ones (measured on SmolLM2-135M, 2 cores: prompt
    processing 551 vs 347 tokens/s, decoding 32 sequences 312 vs 238: benchmarks/llamacpp_steps.py)."""
    import gguf
    from gguf.quants import dequantize

    out = src.with_name(src.stem + ".f32.gguf")
    if out.is_file():
        return out
    reader = gguf.GGUFReader(str(src))
    writer = gguf.GGUFWriter(str(out) + ".tmp", reader.fields["general.architecture"].contents())
    for f in reader.fields.values():
        if f.name in ("general.architecture", "general.file_type") or f.name.startswith("GGUF."):
            continue
        kind = f.types[0]
        writer.add_key_value(f.name, f.contents(), kind, sub_type=f.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    writer.add_uint32("general.file_type", 0)  # all float32
    for t in reader.tensors:
        writer.add_tensor(t.name, dequantize(t.data, t.tensor_type).astype(np.float32))
    return _write_gguf(writer, out)


def _permute_rows(w, n_head: int):
    """llama.cpp stores Llama's q/k projections with rotary halves interleaved (convert_hf_to_gguf's
    permute); a LoRA B matrix's rows must follow."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def adapter_to_gguf(adapter_dir: Path, out: Path | None = None) -> Path:
    """Convert a peft LoRA adapter (safetensors) to a llama.cpp GGUF adapter, once; returns its path."""
    import gguf
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    out = out or adapter_dir / "adapter.gguf"
    if out.is_file() and out.stat().st_mtime >= (adapter_dir / "adapter_model.safetensors").stat().st_mtime:
        return out
    acfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    if acfg.get("use_rslora") or acfg.get("use_dora"):
        raise EmreasonError(f"{adapter_dir}: rsLoRA/DoRA adapters cannot run on llama.cpp: use backend hf")
    base_dir = Path(acfg["base_model_name_or_path"])
    cfg = json.loads((base_dir / "config.json").read_text())
    arch = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}.get(cfg["architectures"][0])
    if arch is None:
        raise EmreasonError(f"llama.cpp backend: architecture {cfg['architectures'][0]} is not supported "
                            "(llama, qwen2): use backend hf")
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    writer = gguf.GGUFWriter(str(out) + ".tmp", arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(acfg["lora_alpha"]))
    pat = re.compile(r"(?:base_model\.model\.)?model\.layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])\.weight")
    count = 0
    for name in sorted(tensors):
        m = pat.fullmatch(name)
        if m is None or m.group(2) not in _HF_TO_GGUF:
            raise EmreasonError(f"{adapter_dir}: adapter tensor {name} has no llama.cpp counterpart: "
                                "train with target_modules inside attention/MLP projections, or use backend hf")
        layer, module, ab = m.groups()
        w = tensors[name].astype(np.float32)
        if arch == "llama" and ab == "B" and module in ("self_attn.q_proj", "self_attn.k_proj"):
            w = _permute_rows(w, n_head if module == "self_attn.q_proj" else n_kv)
        writer.add_tensor(f"blk.{layer}.{_HF_TO_GGUF[module]}.weight.lora_{ab.lower()}", np.ascontiguousarray(w))
        count += 1
    if not count:
        raise EmreasonError(f"{adapter_dir}: no LoRA tensors found")
    return _write_gguf(writer, out)


_QUIET = None


def _silence(L) -> None:
    """llama.cpp logs every graph it builds to stderr; keep only our own progress output."""
    global _QUIET
    if _QUIET is None:
        _QUIET = L.llama_log_callback(lambda level, text, user_data: None)
        L.llama_log_set(_QUIET, ctypes.c_void_p(0))


def _sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """One token from softmax(logits / temperature) restricted to the top-p mass (what transformers
    does with top_k=0); argmax when greedy.

    Gumbel-max (argmax of logits / T + Gumbel noise) rather than inverting the CDF: a rounding-level
    change in the logits (a different batch) then changes the draw only when two tokens are within
    that rounding of each other, as with greedy decoding, instead of whenever the uniform lands near
    one of thousands of tiny-probability boundaries."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    g = z - np.log(-np.log(rng.random(z.shape[0])))
    if top_p < 1.0:
        p = np.exp(z - z.max())
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p * cum[-1])) + 1]
        return int(keep[np.argmax(g[keep])])
    return int(np.argmax(g))


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(self, model_cfg, threads: int | None = None, engine_args: dict | None = None, batch_size: int = 16):
        try:
            import llama_cpp as L
        except ImportError:
            raise EmreasonError("backend.name is llamacpp but llama-cpp-python is not installed: "
                                "pip install 'emreason[llamacpp]' (builds llama.cpp, ~5 minutes), or use backend hf") from None
        from transformers import AutoTokenizer, GenerationConfig

        from ..models import resolve

        self.L, self.batch_size = L, batch_size
        self.engine_args = dict(engine_args or {})
        self.threads = threads or os.cpu_count() or 1
        path = Path(resolve(model_cfg.name, model_cfg.allow_pickle))
        self.initial = None
        if (path / "adapter_config.json").is_file():  # a run's iterate: serve it on its base
            self.initial = path
            path = Path(json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"])
        gguf = base_gguf(path)
        if gguf is None:
            raise EmreasonError(f"backend llamacpp needs the model's GGUF: {model_cfg.name!r} was not made from one "
                                "(use an alias or a .gguf file), or use backend hf")
        weights = self.engine_args.pop("weights", "float32")
        if weights not in ("float32", "gguf"):
            raise EmreasonError(f"backend.engine_args.weights {weights!r}: float32 (the dequantized weights, as "
                                "transformers uses them) or gguf (the file's own quantization)")
        if weights == "float32":
            gguf = f32_gguf(gguf)
        self.tok = AutoTokenizer.from_pretrained(path)
        eos = []
        if (path / "generation_config.json").is_file():
            e = GenerationConfig.from_pretrained(path).eos_token_id
            eos = [e] if isinstance(e, int) else list(e or [])
        self.end_ids = set(eos) | {self.tok.eos_token_id}
        _silence(L)
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = int(self.engine_args.pop("n_gpu_layers", 0))
        self.model = L.llama_model_load_from_file(str(gguf).encode(), mp)
        if not self.model:
            raise EmreasonError(f"llama.cpp could not load {gguf}")
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.ctx, self.ctx_shape, self.adapter = None, (0, 0, 0), None
        self.set_iterate(self.initial)

    def set_iterate(self, source: Path | None) -> None:
        """Serve the base GGUF (None) or an iterate's LoRA adapter on it."""
        L = self.L
        source = source or self.initial
        if source is not None and not (Path(source) / "adapter_config.json").is_file():
            raise EmreasonError(f"{source}: backend llamacpp serves LoRA iterates only (train.method lora)")
        if self.adapter is not None:
            if self.ctx:
                L.llama_set_adapters_lora(self.ctx, None, 0, None)
            L.llama_adapter_lora_free(self.adapter)
            self.adapter = None
        if source is not None:
            self.adapter = L.llama_adapter_lora_init(self.model, str(adapter_to_gguf(Path(source))).encode())
            if not self.adapter:
                raise EmreasonError(f"llama.cpp could not load the adapter of {source}")
        self._apply_adapter()

    def _apply_adapter(self) -> None:
        L = self.L
        if self.ctx and self.adapter is not None:
            arr = (ctypes.c_void_p * 1)(ctypes.cast(self.adapter, ctypes.c_void_p))
            scales = (ctypes.c_float * 1)(1.0)
            L.llama_set_adapters_lora(self.ctx, ctypes.cast(arr, L.llama_set_adapters_lora.argtypes[1]), 1, scales)

    def _context(self, n_seq: int, per_seq: int, n_batch: int):
        """A context with n_seq sequences of up to per_seq tokens each; reused while big enough.

        Each sequence gets its own cells (kv_unified off). Either way a neighbour in the same call
        changes a sequence's logits through rounding only (benchmarks/llamacpp_steps.py: max
        shift 0.04 with separate cells, 0.008 unified, on float32 weights); separate cells make
        scattered slots slow, which `generate` avoids by keeping its sequences in slots 0..m-1.
        Whether a unified cache would be faster with float32 weights has not been measured."""
        L = self.L
        shape = self.ctx_shape
        if self.ctx and shape[0] >= n_seq and shape[1] >= per_seq and shape[2] >= n_batch:
            L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
            return self.ctx
        if self.ctx:
            L.llama_free(self.ctx)
        n_seq, per_seq, n_batch = max(n_seq, shape[0]), max(per_seq, shape[1]), max(n_batch, shape[2])
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_seq * per_seq, n_batch, min(n_batch, 512), n_seq
        cp.n_threads = cp.n_threads_batch = self.threads
        cp.kv_unified, cp.no_perf = False, True
        for key, value in self.engine_args.items():
            setattr(cp, key, value)
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise EmreasonError(f"llama.cpp could not make a context for {n_seq} sequences of {per_seq} tokens")
        self.ctx_shape = (n_seq, per_seq, n_batch)
        self._apply_adapter()
        return self.ctx

    def chat(self, user: str, system: str | None = None) -> str:
        return render_chat(self.tok, user, system)

    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[Generation]]:
        if params.temperature == 0 and params.n > 1:
            raise ValueError("greedy decoding (temperature 0) gives one sample per prompt; set n=1")
        L = self.L
        enc = [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        jobs = [(i, j) for i in range(len(prompts)) for j in range(params.n)]
        out: list[list[Generation | None]] = [[None] * params.n for _ in prompts]
        if not jobs:
            return out  # type: ignore[return-value]
        slots = min(self.batch_size, len(jobs))
        longest = max(map(len, enc))
        n_batch = max(512, longest, slots)
        ctx = self._context(slots, longest + params.max_new_tokens + 1, n_batch)
        mem = L.llama_get_memory(ctx)
        batch = L.llama_batch_init(n_batch, 0, 1)
        queue = list(reversed(jobs))
        active: list[dict] = []  # slot k holds active[k]: running sequences always fill slots 0..m-1

        def fill(items) -> None:  # (token, position, sequence, wants logits)
            for n, (t, pos, seq, logits) in enumerate(items):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = t, pos, 1
                batch.seq_id[n][0], batch.logits[n] = seq, logits
            batch.n_tokens = len(items)
            if L.llama_decode(ctx, batch) != 0:
                raise EmreasonError("llama.cpp decode failed (context too small?)")

        def take(st: dict, idx: int) -> bool:  # sample st's next token from batch row idx; True when done
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, idx), shape=(self.n_vocab,))
            t = _sample(logits, params.temperature, params.top_p, st["rng"])
            st["ids"].append(t)
            done = t in self.end_ids or len(st["ids"]) >= params.max_new_tokens
            if not done and params.stop_at_answer:
                done = answer_is_complete(self.tok.decode(st["ids"][-16:], skip_special_tokens=True))
            if done:
                i, j = st["job"]
                out[i][j] = finish_generation(self.tok, self.end_ids, st["ids"], params)
                if progress is not None and j == params.n - 1:
                    progress.update(1)
            return done

        def retire(finished: set[int]) -> None:
            """Free the finished slots, moving the highest running sequences down into them: llama.cpp
            decodes a step over slots 0..m-1 in one micro-batch, but over scattered slots in many
            (measured: 16 of 32 slots, every other one, 51 tokens/s instead of 255)."""
            for k in sorted(finished, reverse=True):
                last = len(active) - 1
                L.llama_memory_seq_rm(mem, k, -1, -1)
                if k != last:
                    L.llama_memory_seq_cp(mem, last, k, -1, -1)
                    L.llama_memory_seq_rm(mem, last, -1, -1)
                    active[k] = active[last]
                active.pop()

        try:
            while queue or active:
                # Admit prompts into free slots, each prefilled in a call of its own: a call that
                # mixes sequences is cut into per-sequence micro-batches (each has its own cells).
                while queue and len(active) < slots:
                    i, j = queue.pop()
                    ids, k = enc[i], len(active)
                    fill([(t, p, k, p == len(ids) - 1) for p, t in enumerate(ids)])
                    active.append({"job": (i, j), "ids": [], "pos": len(ids), "rng": np.random.default_rng([params.seed, i, j])})
                    if take(active[k], len(ids) - 1):
                        retire({k})
                if not active:
                    continue
                # One decoding step for every running sequence: one token each, slots 0..m-1.
                fill([(st["ids"][-1], st["pos"], k, True) for k, st in enumerate(active)])
                finished = set()
                for k, st in enumerate(active):
                    st["pos"] += 1
                    if take(st, k):
                        finished.add(k)
                retire(finished)
        finally:
            L.llama_batch_free(batch)
        return out  # type: ignore[return-value]

    def logits(self, ids: list[int], start: int = 0) -> np.ndarray:
        """Next-token logits after each of ids[start:], as a (len(ids) - start, vocab) array."""
        L = self.L
        ctx = self._context(1, len(ids) + 1, max(512, len(ids)))
        batch = L.llama_batch_init(len(ids), 0, 1)
        try:
            for p, t in enumerate(ids):
                batch.token[p], batch.pos[p], batch.n_seq_id[p] = t, p, 1
                batch.seq_id[p][0], batch.logits[p] = 0, p >= start
            batch.n_tokens = len(ids)
            if L.llama_decode(ctx, batch) != 0:
                raise EmreasonError("llama.cpp decode failed")
            return np.stack([np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, p), shape=(self.n_vocab,)).copy()
                             for p in range(start, len(ids))])
        finally:
            L.llama_batch_free(batch)
            L.llama_memory_clear(L.llama_get_memory(ctx), True)

    def loglik(self, pairs: list[tuple[str, str]]) -> list[float]:
        scores = []
        for ctx_text, cont in pairs:
            c = self.tok(ctx_text, add_special_tokens=True)["input_ids"]
            k = self.tok(cont, add_special_tokens=False)["input_ids"]
            logp = log_softmax(self.logits(c + k, start=len(c) - 1)[:-1].astype(np.float64), axis=-1)
            scores.append(float(logp[np.arange(len(k)), k].sum()))
        return scores

    def close(self) -> None:
        """Free llama.cpp's context, adapter and model (also on garbage collection)."""
        L = getattr(self, "L", None)
        try:
            if getattr(self, "ctx", None):
                L.llama_free(self.ctx)
            if getattr(self, "adapter", None) is not None:
                L.llama_adapter_lora_free(self.adapter)
            if getattr(self, "model", None):
                L.llama_model_free(self.model)
        except TypeError:  # interpreter shutdown: the library is already unloaded
            pass
        self.ctx = self.adapter = self.model = None

    __del__ = close
