"""The vLLM backend's own logic against a stand-in `vllm` module (vLLM needs a CUDA GPU, which the
test machines lack): one request per sample with its own seed, the answer-line stop strings, each
iterate a LoRA request with a new id, sleep during training and wake before sampling."""

import sys
import types
from dataclasses import dataclass, field

import pytest

from emreason.backends import SamplingParams


@dataclass
class _Out:
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class _Request:
    outputs: list
    prompt_token_ids: list = field(default_factory=list)
    prompt_logprobs: list | None = None


class _FakeLLM:
    instances: list = []

    def __init__(self, model, **kwargs):
        from transformers import AutoTokenizer

        self.model, self.kwargs, self.calls, self.log = model, kwargs, [], []
        self._tok = AutoTokenizer.from_pretrained(model)
        _FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return self._tok

    def sleep(self, level):
        self.log.append(("sleep", level))

    def wake_up(self):
        self.log.append(("wake",))

    def generate(self, requests, sampling, lora_request=None, use_tqdm=False):
        self.calls.append((requests, sampling, lora_request))
        if not isinstance(sampling, list):  # loglik: prompt log-probs of every token
            lp = types.SimpleNamespace
            return [_Request([], r["prompt_token_ids"], [None] + [{t: lp(logprob=-1.0)} for t in r["prompt_token_ids"][1:]])
                    for r in requests]
        outs = []
        for r, sp in zip(requests, sampling):
            text = f"Because reasons {sp.seed}. The answer is (B)" if sp.seed % 2 else "and on and on"
            outs.append(_Request([_Out(text, [5] * (7 if sp.seed % 2 else sp.max_tokens), "stop" if sp.seed % 2 else "length")]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = _FakeLLM
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, lora_id, path: types.SimpleNamespace(name=name, id=lora_id, path=path)
    for name, mod in {"vllm": vllm, "vllm.inputs": inputs, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    _FakeLLM.instances = []
    return _FakeLLM


def test_requests_seeds_stops_and_adapters(fake_vllm, tiny_llama, tmp_path):
    from emreason.backends import open_backend
    from emreason.config import BackendConfig, ModelConfig

    adapter = tmp_path / "iter_1" / "model"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    backend = open_backend(BackendConfig(name="vllm", engine_args={"gpu_memory_utilization": 0.3}),
                           ModelConfig(name=str(tiny_llama), dtype="bfloat16"), batch_size=8)
    llm = fake_vllm.instances[0]
    assert llm.kwargs["enable_lora"] and llm.kwargs["enable_sleep_mode"]
    assert llm.kwargs["gpu_memory_utilization"] == 0.3 and llm.kwargs["dtype"] == "bfloat16"

    prompts = [backend.chat("q one"), backend.chat("q two")]
    params = SamplingParams(n=2, temperature=0.7, max_new_tokens=9, seed=11)
    out = backend.generate(prompts, params)
    requests, sampling, lora = llm.calls[-1]
    assert len(requests) == 4 and lora is None  # one request per sample, on the base model
    seeds = [sp.seed for sp in sampling]
    assert len(set(seeds)) == 4 and backend.generate(prompts, params) == out  # own seed each, reproducible
    assert "The answer is (C)" in sampling[0].stop and sampling[0].include_stop_str_in_output
    assert requests[0]["prompt_token_ids"] == backend.tok(prompts[0], add_special_tokens=False)["input_ids"]
    flat = [g for gens in out for g in gens]
    assert [len(g) for g in out] == [2, 2]
    assert all(g.truncated == (g.text == "and on and on") for g in flat)  # cut by length, no answer line

    backend.set_iterate(adapter)
    backend.generate(prompts[:1], SamplingParams(n=1, temperature=0, max_new_tokens=4))
    first = llm.calls[-1][2]
    backend.sleep()  # the M-step trains
    other = tmp_path / "iter_2" / "model"
    other.mkdir(parents=True)
    (other / "adapter_config.json").write_text("{}")
    backend.set_iterate(other)
    backend.generate(prompts[:1], SamplingParams(n=1, temperature=0, max_new_tokens=4))
    second = llm.calls[-1][2]
    assert first.id != second.id and second.path.endswith("iter_2/model")  # a new LoRA id per iterate
    assert llm.log == [("sleep", 1), ("wake",)]  # slept for training, woke before sampling again
    assert len(fake_vllm.instances) == 1  # adapters switch in place: the engine is built once

    assert backend.loglik([(prompts[0], " The answer is (B)")])[0] == pytest.approx(
        -1.0 * len(backend.tok(" The answer is (B)", add_special_tokens=False)["input_ids"]))


def test_cpu_build_without_sleep_mode(fake_vllm, tiny_llama):
    """vLLM's CPU build has no sleep mode: with enable_sleep_mode false the M-step leaves it awake."""
    from emreason.backends import open_backend
    from emreason.config import BackendConfig, ModelConfig

    backend = open_backend(BackendConfig(name="vllm", engine_args={"enable_sleep_mode": False}),
                           ModelConfig(name=str(tiny_llama)), batch_size=8)
    backend.sleep()
    backend.generate([backend.chat("q")], SamplingParams(n=1, temperature=0, max_new_tokens=4))
    assert fake_vllm.instances[0].log == [] and not fake_vllm.instances[0].kwargs["enable_sleep_mode"]


def test_missing_vllm_names_the_extra(monkeypatch, tiny_llama):
    from emreason.backends import open_backend
    from emreason.config import BackendConfig, ModelConfig
    from emreason.errors import EmreasonError

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(EmreasonError, match=r"emreason\[vllm\]"):
        open_backend(BackendConfig(name="vllm"), ModelConfig(name=str(tiny_llama)))
