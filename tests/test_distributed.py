"""The M-step in processes of its own, and scale-out on CPUs: the plain child an engine's loop
launches, and the M-step under `accelerate launch` (DDP, 2 gloo processes), train the same adapter
as one process on the same data, and SIGTERM stops either with a checkpoint they resume from; and
the E-step on 2 Ray workers writes the same sample log as one worker."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from emreason import loop, stop
from emreason.config import RunConfig
from emreason.store import read_jsonl, write_json, write_jsonl
from emreason.train import RESUME_MARKER, train

ROOT = Path(__file__).resolve().parents[1]
ROWS = [{"prompt": f"<|im_start|>user\nQuestion {i}: which plant needs light?<|im_end|>\n<|im_start|>assistant\n",
         "completion": "Plants make food from sunlight by photosynthesis; step 1, step 2. " * (1 + i % 3)
                       + f"\nThe answer is ({'ABCD'[i % 4]})", "weight": 1.0} for i in range(12)]


def _adapter(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def _run_dir(tmp_path: Path, cfg: RunConfig) -> Path:
    """A run directory as the loop leaves it for iteration 1's M-step: run.json and train.jsonl."""
    run_dir = tmp_path / "run"
    write_json(run_dir / "run.json", {"config": cfg.model_dump(mode="json")})
    write_jsonl(run_dir / "iter_1" / "train.jsonl", ROWS)
    return run_dir


def _ddp(run_dir: Path, launcher: str) -> tuple[list[str], dict]:
    """The command and environment of iteration 1's M-step under `accelerate launch`, on CPUs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if torch.cuda.is_available():  # keep to CPUs on a GPU machine (accelerate would give each process a GPU)
        env["ACCELERATE_USE_CPU"] = "true"
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", launcher,
            "-m", "emreason.train", str(run_dir), "1", "--quiet"], env


def test_ddp_two_processes_match_one(tiny_llama, tmp_path):
    train_cfg = {"epochs": 2, "batch_size": 2, "lora_r": 4, "lora_dropout": 0.0, "max_length": 1024,
                 "learning_rate": 1e-3, "launcher": str(ROOT / "configs/accelerate/cpu_ddp.yaml")}
    cfg = RunConfig.model_validate({"model": {"name": str(tiny_llama)}, "train": train_cfg})
    run_dir = _run_dir(tmp_path, cfg)
    cmd, env = _ddp(run_dir, train_cfg["launcher"])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((run_dir / "iter_1" / ".mstep_stats.json").read_text())
    assert stats["train_processes"] == 2

    # One process, twice the per-device batch: the same global batches, the same optimizer steps.
    single = cfg.train.model_copy(update={"batch_size": 4, "launcher": None})
    _, _, ref_stats = train(ROWS, cfg.model, single, tmp_path / "single", seed=cfg.data.seed + 1, device="cpu", quiet=True)
    assert stats["train_steps"] == ref_stats["train_steps"] == 6
    got, ref = _adapter(run_dir / "iter_1" / "model"), _adapter(tmp_path / "single" / "model")
    assert got.keys() == ref.keys()
    moved = max(ref[k].abs().max().item() for k in ref if "lora_B" in k)
    assert moved > 1e-3  # LoRA B starts at zero: training moved it, so the comparison means something
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=2e-5, rtol=1e-4)


def test_the_plain_mstep_child_trains_what_the_loops_process_would(tiny_qwen, tmp_path):
    """With an engine serving generation the loop trains in a child, `python -m emreason.train RUN K
    --device D` (loop._launch_mstep, run here as the loop runs it): the child must train the adapter
    the loop's own process would have, on the loop's device, and leave its stats for the loop. On a
    GPU machine this runs on CUDA."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_cfg = {"epochs": 1, "batch_size": 4, "lora_r": 4, "lora_dropout": 0.0, "max_length": 1024,
                 "learning_rate": 1e-3}
    cfg = RunConfig.model_validate({"model": {"name": str(tiny_qwen)}, "train": train_cfg,
                                    "backend": {"name": "llamacpp", "threads": 1}})
    run_dir = _run_dir(tmp_path, cfg)
    stats = loop._launch_mstep(cfg, run_dir / "iter_1", 1, None, device, quiet=True)  # the loop's own command
    assert stats["train_processes"] == 1 and stats["train_examples"] == len(ROWS)

    _, _, ref_stats = train(ROWS, cfg.model, cfg.train, tmp_path / "inproc", seed=cfg.data.seed + 1, device=device,
                            quiet=True)
    assert stats["train_steps"] == ref_stats["train_steps"] == 3
    got, ref = _adapter(run_dir / "iter_1" / "model"), _adapter(tmp_path / "inproc" / "model")
    assert got.keys() == ref.keys()
    assert max(ref[k].abs().max().item() for k in ref if "lora_B" in k) > 1e-3
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=2e-5, rtol=1e-4)


def _checkpoint_steps(it_dir: Path) -> list[int]:
    """The steps of the M-step's complete checkpoints (their marker written), in order."""
    return sorted(int(p.parent.name.split("-")[1]) for p in (it_dir / "logs").glob(f"*/{RESUME_MARKER}"))


def _signal_at_checkpoint(it_dir: Path, send) -> threading.Thread:
    """Call send() once the M-step's first periodic checkpoint is complete (its marker written)."""
    def watch():
        deadline = time.time() + 300
        while time.time() < deadline and not _checkpoint_steps(it_dir):
            time.sleep(0.01)
        send()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_sigterm_to_the_loop_stops_its_mstep_child_with_a_checkpoint(tiny_qwen, tmp_path):
    """The loop forwards SIGTERM to the M-step's child (emreason.stop): the child checkpoints after
    its step in flight and exits 75, the loop stops; the resumed child trains the same adapter."""
    train_cfg = {"epochs": 1, "batch_size": 2, "lora_r": 4, "lora_dropout": 0.0, "max_length": 1024,
                 "learning_rate": 1e-3, "checkpoint_steps": 2}
    cfg = RunConfig.model_validate({"model": {"name": str(tiny_qwen)}, "train": train_cfg,
                                    "backend": {"name": "llamacpp", "threads": 1}})
    run_dir = _run_dir(tmp_path, cfg)
    with stop.on_signals():
        watcher = _signal_at_checkpoint(run_dir / "iter_1", lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(stop.Stopped, match="M-step"):
            loop._launch_mstep(cfg, run_dir / "iter_1", 1, None, "cpu", quiet=True)
        watcher.join()
    steps = _checkpoint_steps(run_dir / "iter_1")
    assert steps and steps[-1] < 6 and not (run_dir / "iter_1" / "model").exists()

    stats = loop._launch_mstep(cfg, run_dir / "iter_1", 1, None, "cpu", quiet=True)
    assert stats["train_resumed_at_step"] == steps[-1] and stats["train_steps"] == 6
    _, _, ref_stats = train(ROWS, cfg.model, cfg.train, tmp_path / "inproc", seed=cfg.data.seed + 1, device="cpu",
                            quiet=True)
    assert stats["train_loss"] == pytest.approx(ref_stats["train_loss"], rel=1e-5)
    got, ref = _adapter(run_dir / "iter_1" / "model"), _adapter(tmp_path / "inproc" / "model")
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=2e-5, rtol=1e-4)


def _rank_pid(launcher: int, rank: int) -> int:
    """The process of `rank` among the launcher's children (its RANK environment variable)."""
    out = subprocess.run(["pgrep", "-P", str(launcher), "-f", "emreason.train"], capture_output=True, text=True)
    for pid in out.stdout.split():
        if f"\0RANK={rank}\0".encode() in b"\0" + Path(f"/proc/{pid}/environ").read_bytes():
            return int(pid)
    raise AssertionError(f"no rank {rank} among the launcher's processes {out.stdout.split()}")


@pytest.mark.parametrize("to", ["the launcher", "every process", "one rank"])
def test_sigterm_stops_ddp_processes_at_the_same_step(tiny_llama, tmp_path, to):
    """SIGTERM to an `accelerate launch` M-step, to the launcher (as the loop passes a stop on; its
    agent relays it to the ranks), to every process (as Slurm signals a job's) or to rank 1 only:
    the ranks agree on the step to stop at (an all-reduce), write one checkpoint there, and none
    saves an iterate."""
    train_cfg = {"epochs": 2, "batch_size": 2, "lora_r": 4, "lora_dropout": 0.0, "max_length": 1024,
                 "learning_rate": 1e-3, "checkpoint_steps": 2,
                 "launcher": str(ROOT / "configs/accelerate/cpu_ddp.yaml")}
    cfg = RunConfig.model_validate({"model": {"name": str(tiny_llama)}, "train": train_cfg})
    run_dir = _run_dir(tmp_path, cfg)
    cmd, env = _ddp(run_dir, train_cfg["launcher"])
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    send = {"the launcher": lambda: os.kill(proc.pid, signal.SIGTERM),
            "every process": lambda: os.killpg(proc.pid, signal.SIGTERM),
            "one rank": lambda: os.kill(_rank_pid(proc.pid, 1), signal.SIGTERM)}[to]  # rank 0 would save
    _signal_at_checkpoint(run_dir / "iter_1", send).join()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "stopped on SIGTERM during the M-step, after step " in err, err[-3000:]
    steps = _checkpoint_steps(run_dir / "iter_1")
    assert steps and steps[-1] < 6 and not (run_dir / "iter_1" / "model").exists()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((run_dir / "iter_1" / ".mstep_stats.json").read_text())
    assert stats["train_resumed_at_step"] == steps[-1] and stats["train_steps"] == 6


def _log_by_chunk(path: Path) -> dict[int, list[dict]]:
    chunks, current = {}, []
    for r in read_jsonl(path):
        if "chunk_done" in r:
            chunks[r["chunk_done"]] = current
            current = []
        else:
            current.append(r)
    return chunks


def test_ray_workers_write_the_same_sample_log(tiny_llama, data_dir, tmp_path):
    import ray  # bin/test installs the ray extra

    def run(workers: int) -> Path:
        cfg = RunConfig.model_validate({
            "iterations": 1, "eval_base": False, "model": {"name": str(tiny_llama)},
            "data": {"dataset": "arc_easy", "data_dir": str(data_dir), "train_size": 10, "eval_size": 2},
            "sampler": {"name": "rejection", "k": 2},
            "generation": {"max_new_tokens": 12, "batch_size": 4, "chunk_questions": 3},
            "eval": {"max_new_tokens": 4}, "backend": {"threads": 1, "workers": workers}})
        loop.run(cfg, tmp_path / f"w{workers}", quiet=True)
        return tmp_path / f"w{workers}" / "iter_1" / "samples.jsonl"

    threads = torch.get_num_threads()
    try:
        one = _log_by_chunk(run(1))
        with stop.on_signals():  # as `emreason run` calls it: ray.init's own SIGTERM handler is undone
            two = _log_by_chunk(run(2))
            assert signal.getsignal(signal.SIGTERM) is stop._handle
    finally:
        torch.set_num_threads(threads)
        if ray.is_initialized():
            ray.shutdown()
    assert sorted(one) == sorted(two) == [0, 1, 2, 3]
    assert sum(len(v) for v in one.values()) == 20  # 10 questions x k=2, nothing accepted by a random model
    assert one == two
