import hashlib

import pytest

from emreason import models
from emreason.errors import EmreasonError


def test_unknown_alias_and_paths(tmp_path):
    with pytest.raises(EmreasonError, match="unknown model alias"):
        models.fetch("gpt-5")
    with pytest.raises(EmreasonError, match="not found"):
        models.resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(EmreasonError, match="no config.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(EmreasonError, match="not a folder"):
        models.resolve("./nope")


def test_pickle_only_checkpoint_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(EmreasonError, match="pickle"):
        models.resolve(str(tmp_path))
    assert models.resolve(str(tmp_path), allow_pickle=True) == str(tmp_path)
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(EmreasonError, match="no weights"):
        models.resolve(str(tmp_path))


def test_tampered_model_file_is_rejected_and_not_cached(tmp_path, monkeypatch):
    blob = tmp_path / "part.bin"
    blob.write_bytes(b"GGUF" + b"\0" * 100)
    monkeypatch.setenv("EMREASON_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(models.ALIASES, "fake", models.ModelAlias(
        packages=("fake-pkg==1.0",), sha256="0" * 64, family="llama", description="", license=""))
    monkeypatch.setattr(models, "_installed_member", lambda package, name: blob)
    with pytest.raises(EmreasonError, match="sha256 mismatch"):
        models.fetch("fake")
    assert not any((tmp_path / "cache").rglob("*.gguf*"))
    good = hashlib.sha256(blob.read_bytes()).hexdigest()
    monkeypatch.setitem(models.ALIASES, "fake", models.ModelAlias(
        packages=("fake-pkg==1.0",), sha256=good, family="llama", description="", license=""))
    assert models.fetch("fake").read_bytes() == blob.read_bytes()


def test_local_model_loads_left_padded(tiny_llama):
    model, tok = models.load(str(tiny_llama))
    assert tok.padding_side == "left" and tok.pad_token is not None and not model.training


@pytest.mark.parametrize("content", [b"", b"not a gguf at all", b"GGUF\x03\x00\x00\x00" + b"\x00" * 20])
def test_bad_gguf_files_are_clear_errors(tmp_path, monkeypatch, content):
    monkeypatch.setenv("EMREASON_CACHE", str(tmp_path / "cache"))
    p = tmp_path / "m.gguf"
    p.write_bytes(content)
    with pytest.raises(EmreasonError, match="GGUF"):
        models.resolve(str(p))
    assert not any((tmp_path / "cache").rglob("*.safetensors"))


def test_directory_resolution_of_runs(tmp_path):
    run = tmp_path / "run"
    (run / "iter_1" / "model").mkdir(parents=True)
    (run / "iter_3" / "model").mkdir(parents=True)
    (run / "iter_3" / "model" / "adapter_config.json").write_text("{}")
    (run / "iter_3" / "model" / "adapter_model.safetensors").write_bytes(b"x")
    assert models.run_iterate(run) == run / "iter_3" / "model"
    assert models.run_iterate(run / "iter_1") == run / "iter_1" / "model"
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "run.json").write_text("{}")
    with pytest.raises(EmreasonError, match="no trained iterate"):
        models.resolve(str(empty))


def test_machine_names_cpu_cpus_and_visible_gpus(monkeypatch):
    """The hardware string each phase records beside its seconds."""
    import os
    import sys
    from types import SimpleNamespace

    monkeypatch.setitem(sys.modules, "torch", None)  # torch not loaded: no GPU query
    cpu_only = models.machine()
    assert f"{len(os.sched_getaffinity(0))} CPUs" in cpu_only and ";" not in cpu_only
    names = ["NVIDIA H200", "NVIDIA H200", "NVIDIA A100"]
    fake = SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: True, device_count=lambda: 3,
                                                get_device_name=names.__getitem__))
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert models.machine() == cpu_only + "; 2x NVIDIA H200, 1x NVIDIA A100"
