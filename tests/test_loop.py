"""The EM loop end to end on a tiny random model. Generation is scripted (a random model never
answers correctly) but everything else is real: run directory, sample log, LoRA training with
transformers' Trainer, saving, reloading, evaluation, resume."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from emreason import loop
from emreason.backends import Generation
from emreason.backends.hf import HFBackend
from emreason.cli import main
from emreason.config import RunConfig
from emreason.errors import EmreasonError
from emreason.models import machine
from emreason.store import read_json, read_jsonl, write_jsonl

RATIONALE = "Plants need light to make their food, so the other choices cannot be right here at all."


def scripted_generate(self, prompts, params, progress=None):
    """Hinted prompts: a good rationale ending in the hinted letter. Plain prompts: a wrong or a
    right answer depending on the seed, so rejection and STaR have something to decide."""
    out = []
    for i, p in enumerate(prompts):
        m = re.search(r"The correct answer is \((\w)\)", p)
        if m:
            text = f"{RATIONALE}\nThe answer is ({m.group(1)})."
        else:
            text = f"{RATIONALE}\nThe answer is ({'ABCD'[(params.seed + i) % 4]})."
        out.append([Generation(text, 20 + i % 3, False)] * params.n)
        if progress is not None:
            progress.update(1)
    return out


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(HFBackend, "generate", scripted_generate)


def cfg(model, **over):
    raw = {"iterations": 2, "data": {"dataset": "arc_easy", "train_size": 10, "eval_size": 4},
           "model": {"name": str(model)}, "sampler": {"name": "pps"},
           "generation": {"max_new_tokens": 16, "batch_size": 4, "chunk_questions": 4},
           "train": {"epochs": 1, "batch_size": 4, "lora_r": 4, "max_length": 1024}, "eval": {"max_new_tokens": 8}}
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    return RunConfig.model_validate(raw)


REQUIRED = ["iteration", "sampler", "accept_rate", "sampled_tokens", "tokens_per_accepted", "mean_rationale_tokens",
            "train_loss", "eval_accuracy", "eval_ci_low", "eval_ci_high", "eval_parse_rate"]


def test_pps_two_iterations_end_to_end(tiny_llama, data_dir, tmp_path, scripted):
    run_dir = tmp_path / "run"
    rows = loop.run(cfg(tiny_llama), run_dir, quiet=True)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    for r in rows[1:]:
        for key in REQUIRED:
            assert key in r, key
        assert r["accept_rate"] == 1.0 and r["train_examples"] == 10 and r["train_loss"] > 0
    assert [json.loads(l)["iteration"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    samples = read_jsonl(run_dir / "iter_1" / "samples.jsonl")
    attempts = [s for s in samples if "chunk_done" not in s]
    assert len(attempts) == 10 and all(s["hinted"] and s["accepted"] for s in attempts)
    train = read_jsonl(run_dir / "iter_1" / "train.jsonl")
    assert all("correct answer is" not in t["prompt"] for t in train)
    model_dir = run_dir / "iter_2" / "model"
    assert (model_dir / "adapter_model.safetensors").is_file()
    # the iterate loads with plain peft ...
    from peft import AutoPeftModelForCausalLM
    AutoPeftModelForCausalLM.from_pretrained(model_dir)
    # ... and `emreason eval --model RUN_DIR` evaluates the latest iterate
    assert main(["eval", "--model", str(run_dir), "--limit", "2", "--max-new-tokens", "4", "--quiet"]) == 0


def test_rejection_star_direct_none_run(tiny_qwen, data_dir, tmp_path, scripted):
    for name in ("rejection", "star", "direct", "none"):
        rows = loop.run(cfg(tiny_qwen, sampler={"name": name, "k": 2}, iterations=1), tmp_path / name, quiet=True)
        assert rows[0]["iteration"] == 0
        if name == "none":
            assert len(rows) == 1
        else:
            assert rows[-1]["iteration"] == 1 and rows[-1]["train_examples"] > 0
    star = [s for s in read_jsonl(tmp_path / "star" / "iter_1" / "samples.jsonl") if "chunk_done" not in s]
    plain_wrong = {s["question_id"] for s in star if s["stage"] == "plain" and not s["accepted"]}
    assert {s["question_id"] for s in star if s["stage"] == "rationalize"} == plain_wrong
    assert json.loads((tmp_path / "direct" / "iter_1" / "eval" / "metrics.json").read_text())["mode"] == "direct"


def test_nothing_accepted_skips_the_mstep(tiny_llama, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(HFBackend, "generate", lambda self, prompts, params, progress=None:
                        [[Generation("no idea", 2, False)] * params.n for _ in prompts])
    rows = loop.run(cfg(tiny_llama, iterations=1), tmp_path / "r", quiet=True)
    assert rows[1]["skipped"] is True and rows[1]["accept_rate"] == 0.0
    assert not (tmp_path / "r" / "iter_1" / "model").exists()
    assert rows[1]["eval_accuracy"] == rows[0]["eval_accuracy"]  # the same model: its evaluation is reused


def test_interrupted_run_resumes_to_the_same_result(tiny_llama, data_dir, tmp_path, monkeypatch):
    calls = {"n": 0}

    def flaky(self, prompts, params, progress=None):
        calls["n"] += 1
        if calls["n"] == 4:  # die in the middle of iteration 1's E-step (after 2 of 3 chunks)
            raise KeyboardInterrupt
        time.sleep(0.3)  # time spent before the interruption, which the E-step's seconds must keep
        return scripted_generate(self, prompts, params, progress)

    c = cfg(tiny_llama, sampler={"name": "rejection", "k": 2}, iterations=1)
    monkeypatch.setattr(HFBackend, "generate", scripted_generate)
    clean = loop.run(c, tmp_path / "clean", quiet=True)
    monkeypatch.setattr(HFBackend, "generate", flaky)
    monkeypatch.setattr(loop, "machine", lambda: "machine A")
    with pytest.raises(KeyboardInterrupt):
        loop.run(c, tmp_path / "resumed", quiet=True)
    assert not (tmp_path / "resumed" / ".lock").exists()
    with pytest.raises(EmreasonError, match="--resume"):
        loop.run(c, tmp_path / "resumed", quiet=True)
    monkeypatch.setattr(loop, "machine", lambda: "machine B")  # resumed elsewhere: each phase names both
    resumed = loop.run(c, tmp_path / "resumed", resume=True, quiet=True)
    assert resumed[1]["estep_machine"] == "machine A + machine B" and resumed[1]["eval_machine"] == "machine B"
    assert resumed[0]["eval_machine"] == "machine A"  # the base evaluation finished before the interruption
    assert clean[1]["train_machine"] == clean[1]["eval_machine"] == clean[1]["estep_machine"] == machine()
    # CPU seconds beside the wall seconds (they expose a paused or shared phase); the E-step's sum
    # its chunks' own, across the interruption
    assert clean[1]["train_cpu_seconds"] > 0  # (the scripted sampler and evaluation use next to none)
    assert clean[1]["eval_cpu_seconds"] >= 0 and clean[1]["estep_cpu_seconds"] >= 0
    # and the seconds each phase sat stopped, left out of its seconds (none here: tests/test_clock.py)
    assert clean[1]["estep_paused_seconds"] == clean[1]["eval_paused_seconds"] == clean[1]["train_paused_seconds"] == 0
    markers = [r for r in read_jsonl(tmp_path / "resumed" / "iter_1" / "samples.jsonl") if "chunk_done" in r]
    assert len(markers) == 3 and resumed[1]["estep_cpu_seconds"] == round(sum(r["cpu_seconds"] for r in markers), 2)
    assert all(r["paused_seconds"] == 0 for r in markers)
    assert loop.cpu_total([1.0, 2.5]) == 3.5 and loop.cpu_total([1.0, None]) is None and loop.cpu_total([]) is None
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith(("seconds", "machine"))
                           and k != "train_tokens_per_second" and k != "eval_tokens_per_second"} for r in rows]
    assert strip(resumed) == strip(clean)
    a = [s for s in read_jsonl(tmp_path / "clean" / "iter_1" / "samples.jsonl") if "chunk_done" not in s]
    b = [s for s in read_jsonl(tmp_path / "resumed" / "iter_1" / "samples.jsonl") if "chunk_done" not in s]
    assert sorted(map(json.dumps, a)) == sorted(map(json.dumps, b))
    markers = [s for s in read_jsonl(tmp_path / "resumed" / "iter_1" / "samples.jsonl") if "chunk_done" in s]
    seconds = read_json(tmp_path / "resumed" / "iter_1" / "estep.json")["estep_seconds"]
    assert seconds >= 0.5 and abs(seconds - sum(m["seconds"] for m in markers)) < 0.2


def test_resume_refuses_a_different_config(tiny_llama, data_dir, tmp_path, scripted):
    loop.run(cfg(tiny_llama, iterations=1, sampler={"name": "none"}), tmp_path / "r", quiet=True)
    with pytest.raises(EmreasonError, match=r"different config \(sampler.name\).*only iterations, train.checkpoint_steps"):
        loop.run(cfg(tiny_llama, iterations=1, sampler={"name": "pps"}), tmp_path / "r", resume=True, quiet=True)
    # How often the M-step checkpoints may change (a preempted cluster job wants it more often); the
    # M-step's child reads run.json, so the new value goes there, with the change on record.
    loop.run(cfg(tiny_llama, iterations=1, sampler={"name": "none"}, train__checkpoint_steps=2),
             tmp_path / "r", resume=True, quiet=True)
    meta = read_json(tmp_path / "r" / "run.json")
    assert meta["config"]["train"]["checkpoint_steps"] == 2
    assert [{k: v for k, v in c.items() if k != "at"} for c in meta["changed_on_resume"]] == [
        {"train.checkpoint_steps": [None, 2]}]


def test_lock_live_and_stale(tmp_path):
    (tmp_path / "r").mkdir()
    import socket
    (tmp_path / "r" / ".lock").write_text(f"{socket.gethostname()} {os.getpid()}")
    with pytest.raises(EmreasonError, match="in use"):
        with loop.RunLock(tmp_path / "r"):
            pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "r" / ".lock").write_text(f"{socket.gethostname()} {dead.stdout.strip()}")
    with loop.RunLock(tmp_path / "r"):
        assert (tmp_path / "r" / ".lock").read_text().endswith(str(os.getpid()))


@pytest.mark.parametrize("raw,fragment", [
    ({"sampler": {"name": "beam"}}, "sampler.name"),
    ({"sampler": {"k": 0}}, "sampler.k"),
    ({"generation": {"temperature": -1}}, "generation.temperature"),
    ({"data": {"eval_split": "train"}}, "eval_split equals train_split"),
    ({"dataa": {}}, "dataa: unknown key"),
    ({"train": {"epochs": "many"}}, "train.epochs"),
    ({"name": "../escape"}, "name"),
    ({"sampler": {"name": "rejection", "k": 4}, "generation": {"temperature": 0}}, "greedy"),
])
def test_invalid_configs_fail_before_any_model_loads(tmp_path, raw, fragment):
    import yaml
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(EmreasonError, match=re.escape(fragment)):
        loop.load_run_config(str(p))


def test_cli_set_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sampler: {name: star}\n")
    c = loop.load_run_config(str(p), ["sampler.hinted=3", "data.train_size=null"])
    assert c.sampler.hinted == 3 and c.data.train_size is None and c.name == "c"


def test_export_adapter_and_merged(tiny_llama, data_dir, tmp_path, scripted):
    run_dir = tmp_path / "run"
    loop.run(cfg(tiny_llama, iterations=1), run_dir, quiet=True)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "adapter")]) == 0
    assert main(["export", str(run_dir), "--out", str(tmp_path / "merged"), "--merge"]) == 0
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM
    AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter")
    AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    card = (tmp_path / "merged" / "README.md").read_text()
    assert "pps" in card and "| 1 |" in card and "merged model" in card
    assert main(["export", str(run_dir), "--out", str(tmp_path / "merged")]) == 2  # never overwrites


def test_the_base_evaluation_is_shared_only_under_the_same_answer_rules(tmp_path, monkeypatch):
    """Samplers of one comparison share the base model's evaluation; editing prompts.py (how
    prompts render, when generation stops, how answers are read) must not reuse an old one."""
    from types import SimpleNamespace

    from emreason import prompts

    questions = [SimpleNamespace(id=i) for i in ("q1", "q2")]
    base = loop._shared_base_eval(cfg("smollm2-135m", sampler={"name": "star"}), questions)
    assert base == loop._shared_base_eval(cfg("smollm2-135m", sampler={"name": "pps"}), questions)
    assert base != loop._shared_base_eval(cfg("smollm2-135m", prompts={"cot_prefix": "Hmm."}), questions)
    assert base != loop._shared_base_eval(cfg("smollm2-135m"), questions[:1])
    edited = tmp_path / "prompts.py"
    edited.write_text(open(prompts.__file__).read() + "\n# a changed answer rule\n")
    monkeypatch.setattr(prompts, "__file__", str(edited))
    assert base != loop._shared_base_eval(cfg("smollm2-135m", sampler={"name": "star"}), questions)


def test_return_memory_hands_freed_heap_back_to_the_os():
    """glibc keeps freed mid-size blocks (below its raised mmap threshold) as the process's own;
    after an M-step that was ~18 GB at 1.5B. return_memory() must give them back. In a fresh
    interpreter with glibc's thresholds fixed (GLIBC_TUNABLES): when glibc trims or maps a block by
    itself depends on what the process allocated before, which differs between machines."""
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    script = (
        "import torch\n"
        "from emreason.loop import return_memory\n"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**30\n"
        "blocks = [torch.ones(2_000_000) for _ in range(150)]\n"  # 1.2 GB of 8 MB heap blocks
        "held = rss(); del blocks; import gc; gc.collect(); kept = rss(); return_memory()\n"
        "print(held, kept, rss())\n")
    # 8 MB blocks come from the heap (not mmap), and glibc never trims the heap on its own
    tunables = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=68719476736"
    held, kept, after = map(float, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                                  check=True, env={**os.environ, "GLIBC_TUNABLES": tunables}
                                                  ).stdout.split())
    assert kept > held - 0.2  # the premise: freed but still held
    assert after < held - 0.8


def _strip(rows):
    return [{k: v for k, v in r.items() if not k.endswith("seconds") and not k.endswith("tokens_per_second")
             and k != "model_sha256"} for r in rows]


def test_a_run_restored_without_weights_retrains_only_the_iterate_it_needs(tiny_llama, data_dir, tmp_path, scripted):
    """Committed evidence holds no weights: a finished run restored from it needs none, and an
    interrupted one retrains the missing iterate from its train.jsonl, bit-identical (on this CPU
    and, in session 10, on an H200)."""
    c = cfg(tiny_llama)
    clean = loop.run(c, tmp_path / "clean", quiet=True)
    assert len(read_json(tmp_path / "clean" / "iter_1" / "train_stats.json")["model_sha256"]) == 64
    finished = tmp_path / "finished"
    shutil.copytree(tmp_path / "clean", finished)
    for k in (1, 2):
        shutil.rmtree(finished / f"iter_{k}" / "model")
    assert _strip(loop.run(c, finished, resume=True, quiet=True)) == _strip(clean)
    assert not list(finished.glob("iter_*/model")) and not list(finished.glob("iter_*/rebuild.json"))

    stopped = tmp_path / "stopped"  # stopped in iteration 2's E-step, the iterate it samples from lost
    shutil.copytree(tmp_path / "clean", stopped)
    shutil.rmtree(stopped / "iter_1" / "model")
    shutil.rmtree(stopped / "iter_2")
    assert _strip(loop.run(c, stopped, resume=True, quiet=True)) == _strip(clean)
    rebuilt = read_json(stopped / "iter_1" / "rebuild.json")
    assert rebuilt["identical"] is True and rebuilt["set_aside"] == []


def test_evidence_from_an_iterate_that_retrains_differently_is_set_aside(tiny_llama, data_dir, tmp_path, scripted):
    c = cfg(tiny_llama, iterations=1)
    run_dir = tmp_path / "r"
    clean = loop.run(c, run_dir, quiet=True)
    ev = run_dir / "iter_1" / "eval"
    (ev / "predictions.partial.jsonl").write_text(json.dumps({"question_id": "x", "correct": True}) + "\n"
                                                  + json.dumps({"chunk_done": 0, "seconds": 1.0}) + "\n")
    (ev / "metrics.json").unlink()
    (ev / "predictions.jsonl").unlink()
    stats = read_json(run_dir / "iter_1" / "train_stats.json")
    (run_dir / "iter_1" / "train_stats.json").write_text(json.dumps({**stats, "model_sha256": "0" * 64}))
    shutil.rmtree(run_dir / "iter_1" / "model")
    assert _strip(loop.run(c, run_dir, resume=True, quiet=True)) == _strip(clean)  # the stale chunk was redrawn
    rebuilt = read_json(run_dir / "iter_1" / "rebuild.json")
    assert rebuilt["identical"] is False and rebuilt["set_aside"] == ["iter_1/eval/predictions.partial.jsonl"]
    assert (ev / "predictions.partial.jsonl.stale").is_file()


def test_a_partial_estep_from_an_iterate_that_retrains_differently_is_redrawn(tiny_llama, data_dir, tmp_path, scripted,
                                                                               monkeypatch):
    """The retrain runs before the E-step reads its sample log (so a log set aside is not half used)
    and off the E-step's clock (the study's restored STaR cell once counted 2,000 s of retraining
    as E-step time)."""
    c = cfg(tiny_llama)
    run_dir = tmp_path / "r"
    clean = loop.run(c, run_dir, quiet=True)
    it2 = run_dir / "iter_2"
    rows = read_jsonl(it2 / "samples.jsonl")
    first_chunk = rows[: next(i for i, r in enumerate(rows) if "chunk_done" in r) + 1]
    write_jsonl(it2 / "samples.jsonl", first_chunk)  # stopped after 1 of its 3 chunks
    for name in ("estep.json", "train.jsonl", "train_stats.json"):
        (it2 / name).unlink()
    shutil.rmtree(it2 / "model")
    shutil.rmtree(it2 / "eval")
    stats = read_json(run_dir / "iter_1" / "train_stats.json")
    (run_dir / "iter_1" / "train_stats.json").write_text(json.dumps({**stats, "model_sha256": "0" * 64}))
    shutil.rmtree(run_dir / "iter_1" / "model")
    train_iterate = loop._train_iterate
    monkeypatch.setattr(loop, "_train_iterate", lambda *a: (time.sleep(2), train_iterate(*a))[1])  # a slow retrain
    assert _strip(loop.run(c, run_dir, resume=True, quiet=True)) == _strip(clean)
    rebuilt = read_json(run_dir / "iter_1" / "rebuild.json")
    assert rebuilt["identical"] is False and rebuilt["set_aside"] == ["iter_2/samples.jsonl"]
    assert read_jsonl(it2 / "samples.jsonl.stale") == first_chunk
    assert [r["chunk_done"] for r in read_jsonl(it2 / "samples.jsonl") if "chunk_done" in r] == [0, 1, 2]
    assert rebuilt["wall_seconds"] >= 2 > read_json(it2 / "estep.json")["estep_seconds"]


def test_a_restored_grid_reuses_a_sibling_cells_base_evaluation(tiny_llama, data_dir, tmp_path, scripted, monkeypatch):
    """The base evaluation's cache is one machine's; on a fresh one a grid restored from committed
    evidence finds it in a sibling cell evaluated under the same key, and seeds the cache again."""
    cache = tmp_path / "cache" / "0123abcd"
    monkeypatch.setattr(loop, "_shared_base_eval", lambda cfg, eval_set: cache)
    first = loop.run(cfg(tiny_llama, sampler={"name": "none"}), tmp_path / "grid" / "none", quiet=True)
    assert read_json(tmp_path / "grid" / "none" / "iter_0" / "eval" / "shared.json") == {"digest": "0123abcd"}
    shutil.rmtree(tmp_path / "cache")  # a fresh machine

    def no_generation(*a, **k):
        raise AssertionError("the base model was evaluated again")

    monkeypatch.setattr(HFBackend, "generate", no_generation)
    other = tmp_path / "grid" / "other"  # stopped after a chunk of its base evaluation, on the old machine
    shutil.copytree(tmp_path / "grid" / "none", other)
    for f in ("metrics.json", "predictions.jsonl", "shared.json"):
        (other / "iter_0" / "eval" / f).unlink()
    (other / "iter_0" / "eval" / "predictions.partial.jsonl").write_text(json.dumps({"chunk_done": 0}) + "\n")
    again = loop.run(cfg(tiny_llama, sampler={"name": "none"}), other, resume=True, quiet=True)
    assert _strip(again) == _strip(first)
    assert not (other / "iter_0" / "eval" / "predictions.partial.jsonl").exists()
    assert (cache / "metrics.json").is_file()  # the cache is seeded again
    monkeypatch.setattr(loop, "_shared_base_eval", lambda cfg, eval_set: tmp_path / "cache" / "another-key")
    with pytest.raises(AssertionError, match="evaluated again"):  # another key: no sibling matches
        loop.run(cfg(tiny_llama, sampler={"name": "none"}), tmp_path / "grid" / "third", quiet=True)


def test_no_generation_backend_is_alive_while_a_child_mstep_trains(tiny_llama, data_dir, tmp_path, scripted,
                                                                   monkeypatch):
    """The child needs the machine's memory: a reference left in _mstep once kept llama.cpp's
    engine (1.4 GB) alive through the study's 1.5B M-steps, which then paged (session 13)."""
    import gc

    from emreason.train import train

    launcher = tmp_path / "one.yaml"
    launcher.write_text("num_processes: 1\n")
    alive = []

    def child(c, it_dir, k, init_from, device, quiet):
        gc.collect()
        alive.append(sum(isinstance(o, HFBackend) for o in gc.get_objects()))
        return train(read_jsonl(it_dir / "train.jsonl"), c.model, c.train, it_dir, seed=c.data.seed + k,
                     device=device, quiet=quiet)[2]

    monkeypatch.setattr(loop, "_launch_mstep", child)
    loop.run(cfg(tiny_llama, iterations=1, train__launcher=str(launcher)), tmp_path / "r", quiet=True)
    assert alive == [0]


def test_the_mstep_child_command(tmp_path, monkeypatch):
    """With an engine the M-step runs as a plain child on the loop's device; with train.launcher
    under accelerate launch, which assigns devices itself."""
    it_dir = tmp_path / "run" / "iter_1"
    it_dir.mkdir(parents=True)
    seen = []

    class FakeChild:  # subprocess.Popen's part the loop uses (no pid: nothing may signal it here)
        pid = None

        def __init__(self, cmd):
            seen.append(cmd)
            (it_dir / ".mstep_stats.json").write_text(json.dumps({"train_loss": 0.5}))

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeChild)
    launcher = tmp_path / "ddp.yaml"
    launcher.write_text("num_processes: 2\n")
    plain = cfg("smollm2-135m", backend={"name": "llamacpp"})
    assert loop._launch_mstep(plain, it_dir, 1, None, "cpu", quiet=True) == {"train_loss": 0.5}
    ddp = cfg("smollm2-135m", train={"launcher": str(launcher)})
    loop._launch_mstep(ddp, it_dir, 1, tmp_path / "prev", "cuda", quiet=False)
    assert seen[0][1:] == ["-m", "emreason.train", str(it_dir.parent), "1", "--device", "cpu", "--quiet"]
    assert seen[1][1:] == ["-m", "accelerate.commands.launch", "--config_file", str(launcher), "-m", "emreason.train",
                           str(it_dir.parent), "1", "--init-from", str(tmp_path / "prev")]
    assert not (it_dir / ".mstep_stats.json").exists()  # read and removed
