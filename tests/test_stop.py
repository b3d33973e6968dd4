"""Graceful stops (emreason.stop): a stop signal ends the M-step after its optimizer step in flight
with a checkpoint, and the resumed M-step trains exactly what an unstopped one would."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from emreason import stop


def test_a_stop_request_is_recorded_and_forgotten_on_leaving(capsys):
    before = signal.getsignal(signal.SIGTERM)
    with stop.on_signals():
        stop.check("nowhere")  # nothing asked yet
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.1)  # the handler runs in the main thread between bytecodes
        assert stop.requested() == "SIGUSR1"
        with stop.on_signals():  # nested: the outer block's handlers and request
            assert stop.requested() == "SIGUSR1"
        with pytest.raises(stop.Stopped, match="stopped on SIGUSR1 after the E-step: run the same command with --resume"):
            stop.check("after the E-step")
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated request does not escalate
        time.sleep(0.1)
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C after a request: stop at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    assert stop.requested() is None and signal.getsignal(signal.SIGTERM) is before
    assert re.search(r"SIGUSR1 at \d\d:\d\d:\d\d UTC: stopping after the chunk or optimizer step in flight", capsys.readouterr().err)


def test_a_stop_request_is_forwarded_to_the_mstep_process(tmp_path):
    """SIGTERM to the loop's process reaches its M-step's child, which stops on its own terms."""
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", (
        "import pathlib, sys, time\n"
        "from emreason import stop\n"
        "with stop.on_signals():\n"
        f"    pathlib.Path({str(ready)!r}).touch()\n"
        "    while stop.requested() is None: time.sleep(0.01)\n"
        "    print(stop.requested())\n"
        "sys.exit(stop.EXIT_STOPPED)\n")], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    with stop.on_signals(), stop.forwarding(child):
        os.kill(os.getpid(), signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
        assert stop.requested() == "SIGTERM"
    assert out.strip() == "SIGTERM" and child.returncode == stop.EXIT_STOPPED


def test_forwarding_ends_the_child_when_the_parent_fails():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with pytest.raises(RuntimeError), stop.forwarding(child):
        raise RuntimeError("the loop failed")
    assert child.poll() is not None  # no orphan left training


def test_a_stopped_mstep_keeps_a_checkpoint_and_resumes_to_the_same_iterate(tiny_llama, tmp_path, monkeypatch):
    """SIGTERM during step 2 of 4 (checkpoints every 3): a checkpoint at step 2, no iterate; the
    resumed M-step, checkpointing and logging more often now (what `--resume` may change), goes on
    from it and reaches the loss and weights of one trained without a stop."""
    import emreason.train as T
    from emreason.config import ModelConfig, TrainConfig

    rows = [{"prompt": f"Question {i}: pick one. (A) yes (B) no\nAnswer:", "completion": f" Because {i}.\nThe answer is (A).",
             "weight": 1.0} for i in range(16)]
    cfg, model_cfg = TrainConfig(epochs=1, batch_size=4, checkpoint_steps=3), ModelConfig(name=str(tiny_llama))
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or another test's library's (ray.init sets one)
    _, _, clean = T.train(rows, model_cfg, cfg, tmp_path / "clean", seed=0, device="cpu", quiet=True)

    original = T.WeightedTrainer.training_step

    def signalled_in_step_two(self, *args, **kwargs):
        if self.state.global_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(T.WeightedTrainer, "training_step", signalled_in_step_two)
        with pytest.raises(stop.Stopped, match="after step 2 of 4 \\(a checkpoint at step 2 is kept\\)"):
            T.train(rows, model_cfg, cfg, tmp_path / "stopped", seed=0, device="cpu", quiet=True)
    assert stop.requested() is None and signal.getsignal(signal.SIGTERM) is before
    logs = tmp_path / "stopped" / "logs"
    assert sorted(p.name for p in logs.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (logs / "checkpoint-2" / T.RESUME_MARKER).is_file() and not (tmp_path / "stopped" / "model").exists()

    often = cfg.model_copy(update={"checkpoint_steps": 1, "logging_steps": 1})
    _, _, resumed = T.train(rows, model_cfg, often, tmp_path / "stopped", seed=0, device="cpu", quiet=True)
    assert resumed["train_resumed_at_step"] == 2 and resumed["train_steps"] == clean["train_steps"] == 4
    assert resumed["train_loss"] == pytest.approx(clean["train_loss"], rel=1e-5)
    assert T.weights_sha256(tmp_path / "stopped" / "model") == T.weights_sha256(tmp_path / "clean" / "model")


@pytest.mark.parametrize("ending", ["stopped", "finished"])
def test_the_slurm_script_passes_the_warning_on_and_requeues_a_stopped_run(tmp_path, ending):
    """configs/slurm/run.sbatch, with stand-ins for `emreason` and `scontrol`: Slurm's USR1 reaches
    the run, and a run that stops (exit 75) is requeued; one that finishes is not."""
    from pathlib import Path

    calls = tmp_path / "calls"
    fake = tmp_path / "emreason"
    fake.write_text(f"#!/usr/bin/env bash\necho \"emreason $*\" >> {calls}\n"
                    f"trap 'echo got USR1 >> {calls}; exit 75' USR1\n"
                    + ("touch " + str(tmp_path / "ready") + "\nwhile true; do sleep 0.05; done\n" if ending == "stopped"
                       else "exit 0\n"))
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f"#!/usr/bin/env bash\necho \"scontrol $*\" >> {calls}\n")
    fake.chmod(0o755), scontrol.chmod(0o755)
    script = Path(__file__).resolve().parents[1] / "configs" / "slurm" / "run.sbatch"
    env = {**os.environ, "EMREASON": str(fake), "SLURM_JOB_ID": "42",
           "PATH": f"{scontrol.parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["bash", str(script), "configs/pps.yaml", "runs/pps", "--set", "iterations=3"], env=env)
    if ending == "stopped":
        deadline = time.time() + 30
        while not (tmp_path / "ready").exists() and time.time() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGUSR1)
    assert proc.wait(timeout=30) == (75 if ending == "stopped" else 0)
    lines = calls.read_text().splitlines()
    assert lines[0] == "emreason run configs/pps.yaml --out runs/pps --resume --set iterations=3"
    assert lines[1:] == (["got USR1", "scontrol requeue 42"] if ending == "stopped" else [])
