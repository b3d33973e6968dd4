"""SIGKILL a real `emreason run` process at several points; `--resume` must reach exactly the
metrics and sample log of an uninterrupted run, without redoing finished work."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from emreason.store import read_jsonl

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path, model, sampler):
    p = tmp_path / f"{sampler}.yaml"
    p.write_text(yaml.safe_dump({
        "iterations": 1, "data": {"dataset": "arc_easy", "train_size": 48, "eval_size": 12},
        "model": {"name": str(model)}, "sampler": {"name": sampler, "k": 2},
        "generation": {"max_new_tokens": 24, "batch_size": 8, "chunk_questions": 4},
        "train": {"epochs": 1, "batch_size": 4, "lora_r": 4, "max_length": 1024, "logging_steps": 1,
                  "checkpoint_steps": 3},
        "eval": {"max_new_tokens": 24, "batch_size": 4, "chunk_questions": 4}}))
    return p


def _start(config, out, resume=False):
    cmd = [sys.executable, "-m", "emreason.cli", "run", str(config), "--out", str(out), "--quiet"]
    return subprocess.Popen(cmd + (["--resume"] if resume else []), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_when(proc, condition, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill point: {proc.stderr.read()[-2000:]}")
        if condition():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.01)
    proc.kill()
    pytest.fail("kill point not reached")


def _finish(config, out):
    proc = _start(config, out, resume=True)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return err


def _metrics(out):
    drop = ("seconds", "tokens_per_second", "resumed_at_step")
    return [{k: v for k, v in r.items() if not any(k.endswith(d) for d in drop)} for r in read_jsonl(out / "metrics.jsonl")]


def _samples(out):
    return sorted(json.dumps(r, sort_keys=True) for r in read_jsonl(out / "iter_1" / "samples.jsonl") if "chunk_done" not in r)


def _text(path):
    return path.read_text() if path.is_file() else ""


def _chunks_done(out):
    log = out / "iter_1" / "samples.jsonl"
    return log.is_file() and log.read_text().count('"chunk_done"') >= 2


@pytest.fixture(scope="module")
def clean_runs(tiny_llama, tmp_path_factory, data_dir):
    base = tmp_path_factory.mktemp("clean")
    runs = {}
    for sampler in ("rejection", "direct"):
        cfg = _config(base, tiny_llama, sampler)
        proc = _start(cfg, base / sampler)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        runs[sampler] = (cfg, base / sampler)
    return runs


@pytest.mark.parametrize("sampler,point", [
    ("rejection", "mid E-step"),
    ("rejection", "mid evaluation"),
    ("rejection", "mid base evaluation, after a chunk"),
    ("direct", "mid M-step"),
    ("direct", "mid M-step, after a checkpoint"),
    ("direct", "mid base evaluation"),
])
def test_sigkill_then_resume_matches_a_clean_run(clean_runs, tmp_path, sampler, point):
    cfg, clean = clean_runs[sampler]
    out = tmp_path / "run"
    conditions = {
        "mid E-step": lambda: _chunks_done(out),
        "mid evaluation": lambda: (out / "iter_1" / "estep.json").is_file(),
        "mid base evaluation, after a chunk": lambda: '"chunk_done"' in _text(out / "iter_0" / "eval" / "predictions.partial.jsonl"),
        "mid M-step": lambda: (out / "iter_1" / "train.jsonl").is_file(),
        "mid M-step, after a checkpoint": lambda: any((out / "iter_1" / "logs").glob("checkpoint-*/emreason_resume.json")),
        "mid base evaluation": lambda: (out / "run.json").is_file(),
    }
    _kill_when(_start(cfg, out), conditions[point])
    assert not (out / "metrics.jsonl").exists() or point == "mid evaluation"
    if point == "mid M-step, after a checkpoint":  # the steps before the stop keep their seconds
        for marker in (out / "iter_1" / "logs").glob("checkpoint-*/emreason_resume.json"):
            saved = json.loads(marker.read_text())
            assert saved["seconds"] > 0 and saved["cpu_seconds"] > 0
            marker.write_text(json.dumps(dict(saved, seconds=saved["seconds"] + 1e4, cpu_seconds=saved["cpu_seconds"] + 1e4)))
    err = _finish(cfg, out)
    if point == "mid E-step":
        assert "resuming the E-step after" in err
    if point == "mid base evaluation, after a chunk":
        assert "resuming the evaluation after" in err
    if point == "mid M-step, after a checkpoint":  # same loss and iterate as training without a stop
        assert "resuming the M-step from checkpoint-" in err
        stats = read_jsonl(out / "metrics.jsonl")[-1]
        assert stats["train_seconds"] > 1e4 and stats["train_cpu_seconds"] > 1e4 and stats["train_resumed_at_step"] > 0
    assert not (out / "iter_1" / "logs").exists()  # checkpoints go once the iterate is saved
    assert _metrics(out) == _metrics(clean)
    if sampler == "rejection":
        assert _samples(out) == _samples(clean)
    assert not list(out.rglob(".*.tmp")) and not (out / ".lock").exists()


def test_half_written_checkpoint_and_torn_log_are_recovered(clean_runs, tmp_path):
    """The states a kill during a checkpoint write or a log append leaves behind."""
    cfg, clean = clean_runs["rejection"]
    out = tmp_path / "run"
    _kill_when(_start(cfg, out), lambda: _chunks_done(out))
    log = out / "iter_1" / "samples.jsonl"
    with open(log, "a") as f:  # an append cut mid-chunk: records without their chunk marker, then a torn line
        f.write(json.dumps({"iteration": 1, "question_id": "ghost", "accepted": True}) + "\n" + '{"iteration": 1, "que')
    (out / "iter_1" / ".model.tmp").mkdir()
    (out / "iter_1" / ".model.tmp" / "adapter_model.safetensors").write_bytes(b"partial")
    _finish(cfg, out)
    assert _samples(out) == _samples(clean)
    assert "ghost" not in log.read_text()
    assert _metrics(out) == _metrics(clean)


@pytest.mark.parametrize("sampler,point", [("rejection", "mid E-step"), ("direct", "mid M-step")])
def test_sigterm_stops_at_a_safe_point_and_resumes_to_a_clean_run(clean_runs, tmp_path, sampler, point):
    """SIGTERM (a scheduler's warning) finishes the chunk or optimizer step in flight, keeps it
    (the M-step with a checkpoint between its periodic ones), and exits 75; --resume goes on."""
    cfg, clean = clean_runs[sampler]
    out = tmp_path / "run"
    proc = _start(cfg, out)
    conditions = {"mid E-step": lambda: _chunks_done(out),
                  "mid M-step": lambda: (out / "iter_1" / "train.jsonl").is_file()}
    deadline = time.time() + 240
    while not conditions[point]() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 75, err[-3000:]
    assert re.search(r"SIGTERM at \d\d:\d\d:\d\d UTC: stopping after the chunk or optimizer step in flight", err)
    if point == "mid E-step":
        assert "stopped: stopped on SIGTERM during iteration 1's E-step (" in err
        assert not (out / "iter_1" / "estep.json").exists()
    else:
        assert "stopped: stopped on SIGTERM during the M-step, after step " in err
        assert list((out / "iter_1" / "logs").glob("checkpoint-*/emreason_resume.json"))
        assert not (out / "iter_1" / "model").exists()
    assert not (out / ".lock").exists()
    err = _finish(cfg, out)
    assert ("resuming the E-step after" if point == "mid E-step" else "resuming the M-step from checkpoint-") in err
    assert _metrics(out) == _metrics(clean)
    if sampler == "rejection":
        assert _samples(out) == _samples(clean)
