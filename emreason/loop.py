"""The EM loop: iterations of E-step (sample), M-step (train) and evaluation, in a resumable run directory.

    RUN/run.json                  resolved config, versions, command
    RUN/state.json                where the run is (for people; the files below are the truth)
    RUN/metrics.jsonl             one record per iteration (0 = the untrained model)
    RUN/iter_0/eval/              metrics.json, predictions.jsonl of the base model;
                                  shared.json: its key in the shared cache (a bundled alias)
    RUN/iter_K/samples.jsonl      every E-step attempt, appended a chunk of questions at a time
    RUN/iter_K/estep.json         E-step summary (written once the E-step is complete), its wall and
                                  CPU seconds and the machine(s) that drew it
    RUN/iter_K/train.jsonl        the M-step's (prompt, completion, weight) rows
    RUN/iter_K/model/             the iterate: LoRA adapter or full model (safetensors)
    RUN/iter_K/rebuild.json       only when the iterate was retrained (a run restored without weights)
    RUN/iter_K/eval/              evaluation of the iterate

Each phase is done when its output file exists; every file is written atomically and the sample
log is committed chunk by chunk with a marker line, so a run killed at any moment resumes with
`--resume` without redoing or losing work. Seeds are derived from (seed, iteration, chunk, stage,
round), so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import __version__, data, stop
from .backends import ChatOnly, open_backend
from .backends.hf import HFBackend
from .clock import PhaseClock
from .config import RESUME_MAY_CHANGE, RunConfig, read_yaml, validate
from .errors import EmreasonError, note
from .evaluate import evaluate, timed_summary
from .models import machine, pick_device
from .samplers import estep_summary, present, sample_chunk, training_examples
from .store import append_jsonl, read_json, read_jsonl, write_json, write_jsonl

# --- run directory bookkeeping -----------------------------------------------------------------

class RunLock:
    """One process per run directory. A lock left by a dead process (same host) is taken over."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"

    def __enter__(self):
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, me.encode())
                os.close(fd)
                return self
            except FileExistsError:
                holder, host, pid = self.holder()
                if holder == "dead":
                    note(f"removing a stale lock left by process {pid}")
                    self.path.unlink(missing_ok=True)
                    continue
                raise EmreasonError(f"{self.path.parent} is in use by process {pid} on {host}: wait for it to "
                                    f"finish, or delete {self.path} if that process is gone") from None
        raise EmreasonError(f"could not lock {self.path.parent}")

    def holder(self) -> tuple[str, str, str]:
        """(state, host, pid) of the lock's holder; state is 'none' (no lock), 'alive' or 'dead' (a
        process on this host), or 'elsewhere' (another host: whether it lives cannot be told)."""
        try:
            host, _, pid = self.path.read_text().partition(" ")
        except FileNotFoundError:
            return "none", "", ""
        if host != socket.gethostname() or not pid.isdigit():
            return "elsewhere", host, pid
        return ("alive" if _alive(int(pid)) else "dead"), host, pid

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _versions() -> dict:
    import torch
    import transformers

    return {"emreason": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__}


def prepare_run_dir(run_dir: Path, cfg: RunConfig, resume: bool, overwrite: bool) -> None:
    """Create, reuse (--resume) or replace (--overwrite) a run directory; never silently."""
    meta = run_dir / "run.json"
    if run_dir.exists() and not run_dir.is_dir():
        raise EmreasonError(f"{run_dir} is a file, not a run directory")
    if meta.is_file():
        if overwrite:
            for child in run_dir.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif resume:
            record = read_json(meta)
            old, new = _flatten(record["config"]), _flatten(cfg.model_dump(mode="json"))
            diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            if [k for k in diff if k not in RESUME_MAY_CHANGE]:
                raise EmreasonError(
                    f"{run_dir} was started with a different config ({', '.join(diff[:8])}): resume with "
                    f"the same config (only {', '.join(RESUME_MAY_CHANGE)} may change), or use another --out")
            if diff:  # the M-step's child reads run.json: record the new values, and that they changed
                note(f"resuming with {', '.join(f'{k}: {old.get(k)} -> {new.get(k)}' for k in diff)}")
                record.setdefault("changed_on_resume", []).append(
                    {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **{k: [old.get(k), new.get(k)] for k in diff}})
                write_json(meta, {**record, "config": cfg.model_dump(mode="json")})
            return
        else:
            raise EmreasonError(f"{run_dir} already holds a run: pass --resume to continue it, "
                                "--overwrite to start over, or choose another --out")
    elif run_dir.exists() and any(c.name != ".lock" for c in run_dir.iterdir()):
        raise EmreasonError(f"{run_dir} exists and is not an emreason run directory: choose another --out")
    elif resume:
        note(f"nothing to resume in {run_dir}: starting a new run")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(meta, {"config": cfg.model_dump(mode="json"), "versions": _versions(),
                      "command": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_sample_log(path: Path) -> tuple[list[dict], set[int]]:
    """Records of complete chunks, and those chunks' indices. Records of a chunk whose marker line
    never got written (the process died mid-append) are cut from the file and redrawn."""
    rows = read_jsonl(path, repair=True)
    last = max((i for i, r in enumerate(rows) if "chunk_done" in r), default=-1)
    if last + 1 < len(rows):
        write_jsonl(path, rows[: last + 1])
    kept = rows[: last + 1]
    return [r for r in kept if "chunk_done" not in r], {r["chunk_done"] for r in kept if "chunk_done" in r}


# --- the loop ----------------------------------------------------------------------------------

class _Models:
    """The iterate currently served for generation. With transformers it is loaded on demand and
    dropped before training; an engine (llama.cpp, vLLM) stays up for the whole run and switches
    iterates (adapters) in place, sleeping while the M-step trains."""

    def __init__(self, cfg: RunConfig, run_dir: Path, device: str, quiet: bool = False):
        self.cfg, self.run_dir, self.device, self.quiet = cfg, run_dir, device, quiet
        self.loaded: int | None = None
        self.backend = None

    def iterate_dir(self, k: int) -> Path | None:
        """The model folder of iterate k, walking back over iterations whose M-step was skipped.
        An iterate whose M-step finished but whose weights are gone (a run restored from its
        committed evidence, which holds no weights) is retrained from its training rows first."""
        while k > 0:
            it_dir = self.run_dir / f"iter_{k}"
            if (it_dir / "model").is_dir():
                return it_dir / "model"
            if (it_dir / "train_stats.json").is_file() and not read_json(it_dir / "train_stats.json").get("skipped"):
                _rebuild_iterate(it_dir, k, self)
                return it_dir / "model"
            k -= 1
        return None

    def get(self, k: int):
        source = self.iterate_dir(k)
        key = int(source.parent.name[5:]) if source else 0
        if self.loaded != key:
            if self.cfg.backend.name == "hf" or self.backend is None:
                self.drop()
                self.backend = open_backend(self.cfg.backend, self.cfg.model, source,
                                            batch_size=self.cfg.generation.batch_size)
            else:
                self.backend.set_iterate(source)
            self.loaded = key
        return self.backend

    def set(self, key: int, model, tok) -> None:
        """The M-step's trained model, kept in memory to generate with (transformers backend; an
        engine's M-step trains in a child process and the engine loads the saved iterate)."""
        if hasattr(model, "merge_and_unload"):  # LoRA: merged, generation runs at the base model's speed
            model = model.merge_and_unload()
        model.eval()
        tok.padding_side = "left"
        self.backend = HFBackend(model, tok, batch_size=self.cfg.generation.batch_size, device=self.device)
        self.loaded = key

    def release(self) -> None:
        """Make room for training: engines that can sleep keep their weights in CPU memory."""
        if self.backend is not None and hasattr(self.backend, "sleep"):
            self.backend.sleep()
            self.loaded = None
        else:
            self.drop()

    def drop(self) -> None:
        self.backend, self.loaded = None, None
        return_memory()


def return_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's malloc_trim). glibc keeps
    what a 1.5B M-step freed (~18 GB here) as the process's own: the engine's phases after it, and
    anything else on the machine, would run beside that much memory nobody uses."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def run(cfg: RunConfig, run_dir: Path, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> list[dict]:
    """Run (or resume) the EM loop in `run_dir`; returns the per-iteration metrics."""
    import torch

    train_set = data.load(cfg.data.dataset, cfg.data.train_split, cfg.data.data_dir, cfg.data.train_size, cfg.data.seed)
    eval_set = data.load(cfg.data.dataset, cfg.data.eval_split, cfg.data.data_dir, cfg.data.eval_size,
                         cfg.data.eval_subset_seed)
    overlap = {e.id for e in train_set} & {e.id for e in eval_set}
    if overlap:
        raise EmreasonError(f"{len(overlap)} question(s) are in both the train and eval splits: choose disjoint splits")
    device = pick_device(cfg.backend.device)
    if cfg.backend.threads:
        torch.set_num_threads(cfg.backend.threads)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    if not run_dir.exists():
        run_dir.mkdir()
    with RunLock(run_dir):
        prepare_run_dir(run_dir, cfg, resume, overwrite)
        models = _Models(cfg, run_dir, device, quiet)
        iterations = 1 if cfg.sampler.name == "direct" else (0 if cfg.sampler.name == "none" else cfg.iterations)
        if cfg.eval_base or iterations == 0:
            _eval_phase(cfg, run_dir, 0, models, eval_set, quiet)
        for k in range(1, iterations + 1):
            it_dir = run_dir / f"iter_{k}"
            write_json(run_dir / "state.json", {"iteration": k, "phase": "estep"})
            records = _estep(cfg, it_dir, k, models, train_set, quiet)
            stop.check(f"after iteration {k}'s E-step")
            write_json(run_dir / "state.json", {"iteration": k, "phase": "mstep"})
            _mstep(cfg, it_dir, k, models, train_set, records, device, quiet)
            stop.check(f"after iteration {k}'s M-step")
            write_json(run_dir / "state.json", {"iteration": k, "phase": "eval"})
            _eval_phase(cfg, run_dir, k, models, eval_set, quiet)
            _write_metrics(cfg, run_dir, k)  # progress is readable (and reportable) while a run goes on
        write_json(run_dir / "state.json", {"iteration": iterations, "phase": "done"})
        models.drop()
        return _write_metrics(cfg, run_dir, iterations)


def _estep(cfg: RunConfig, it_dir: Path, k: int, models: _Models, train_set, quiet: bool) -> list[dict]:
    summary_path = it_dir / "estep.json"
    log = it_dir / "samples.jsonl"
    if cfg.sampler.name == "direct":
        return []
    if summary_path.is_file():
        return read_sample_log(log)[0]
    it_dir.mkdir(parents=True, exist_ok=True)
    shown = [present(ex, cfg.data.seed, k, cfg.data.shuffle_choices) for ex in train_set]
    size = cfg.generation.chunk_questions
    chunks = [shown[i:i + size] for i in range(0, len(shown), size)]
    if len(read_sample_log(log)[1]) < len(chunks):
        # A restored run retrains the iterate it samples from here: off the E-step's clock, and
        # before the log is read, as a retrain not known bit-identical sets a partial log aside.
        models.iterate_dir(k - 1)
    records, done = read_sample_log(log)
    if done:
        note(f"iteration {k}: resuming the E-step after {len(done)} of {len(chunks)} chunks")
    # Each chunk's marker holds the seconds since the previous commit, so a resumed E-step still
    # reports the time of all its chunks (the time lost to an interruption is not counted).
    markers = [r for r in read_jsonl(log) if "chunk_done" in r] if done else []
    seconds = [r.get("seconds") or 0 for r in markers]
    paused = [r.get("paused_seconds") or 0 for r in markers]
    here, used = machine(), [r.get("machine") for r in markers]
    cpu = [r.get("cpu_seconds") for r in markers]
    with PhaseClock() as clock, tqdm(total=len(shown), initial=sum(len(chunks[c]) for c in done if c < len(chunks)),
                                     unit="q", desc=f"iter {k}/{cfg.iterations} E-step {cfg.sampler.name}",
                                     file=sys.stderr, disable=quiet) as bar:
        def commit(c: int, new: list[dict]) -> None:
            chunk_seconds, chunk_cpu, stopped = clock.lap()
            # Ray workers sample elsewhere: this process's CPU seconds would not be the chunk's.
            cpu.append(round(chunk_cpu, 2) if cfg.backend.workers == 1 else None)
            seconds.append(round(chunk_seconds, 2))
            paused.append(round(stopped, 2))
            append_jsonl(log, new + [{"chunk_done": c, "questions": len(chunks[c]), "seconds": seconds[-1],
                                      "paused_seconds": paused[-1], "cpu_seconds": cpu[-1], "machine": here}])
            used.append(here)
            records.extend(new)
            bar.update(len(chunks[c]))

        todo = {c: chunk for c, chunk in enumerate(chunks) if c not in done}
        if cfg.backend.workers > 1:
            from .distributed import sample_chunks

            models.drop()
            if todo:
                sample_chunks(cfg, models.iterate_dir(k - 1), todo, k, commit)
                stop.check(f"during iteration {k}'s E-step ({len(used)} of {len(chunks)} chunks kept)")
            todo = {}
        for c, chunk in todo.items():
            stop.check(f"during iteration {k}'s E-step ({len(used)} of {len(chunks)} chunks kept)")
            backend = models.get(k - 1)
            backend.batch_size = cfg.generation.batch_size
            commit(c, sample_chunk(backend, chunk, cfg.sampler, cfg.generation, cfg.prompts, cfg.data.seed, k, c))
    summary = estep_summary(records, len(shown))
    summary["estep_seconds"] = round(sum(seconds), 2)
    summary["estep_paused_seconds"] = round(sum(paused), 2)
    summary["estep_cpu_seconds"] = cpu_total(cpu)
    summary["estep_machine"] = machines(used)
    write_json(summary_path, summary)
    return records


def cpu_total(cpu: list[float | None]) -> float | None:
    """A chunked phase's CPU seconds (this process's, all its threads), or None when a chunk lacks
    them (drawn by older code or by Ray workers). Beside the wall seconds they show what the clock
    alone hides: a phase paused (`kill -STOP`) or sharing its CPUs uses fewer CPU seconds per wall
    second than one that ran alone (at most the CPUs it may use)."""
    return round(sum(cpu), 2) if cpu and None not in cpu else None


def machines(used: list[str | None]) -> str | None:
    """The machines a chunked phase's chunks ran on, in order of first use, joined by " + " when
    it was resumed on another; None where every marker predates the record (None entries)."""
    return " + ".join(dict.fromkeys(m for m in used if m)) or None


def _mstep(cfg: RunConfig, it_dir: Path, k: int, models: _Models, train_set, records, device: str, quiet: bool) -> None:
    stats_path = it_dir / "train_stats.json"
    if stats_path.is_file():
        return
    it_dir.mkdir(parents=True, exist_ok=True)
    shown = {ex.id: present(ex, cfg.data.seed, k, cfg.data.shuffle_choices) for ex in train_set}
    # The chat template is all the rows need. No local name for the backend: it would keep an
    # engine that the M-step drops alive while training runs (llama.cpp's 1.4 GB on the 1.5B).
    rows = training_examples(records, shown, models.backend or ChatOnly(cfg.model), cfg.prompts, cfg.sampler)
    write_jsonl(it_dir / "train.jsonl", rows)
    if not rows:
        note(f"iteration {k}: no sample was accepted; skipping the M-step (the iterate stays as it was)")
        write_json(stats_path, {"skipped": True, "train_examples": 0})
        return
    note(f"iteration {k}: M-step on {len(rows)} examples ({cfg.train.method}, init {cfg.train.init})")
    write_json(stats_path, {"skipped": False, **_train_iterate(cfg, it_dir, k, models, rows, device, quiet)})


def _train_iterate(cfg: RunConfig, it_dir: Path, k: int, models: _Models, rows: list[dict], device: str,
                   quiet: bool) -> dict:
    """Train iterate k on `rows` into it_dir/model; the stats carry the weights' sha256, so a
    retrained iterate can be checked against the first."""
    from .train import train, weights_sha256

    init_from = models.iterate_dir(k - 1) if cfg.train.init == "previous" else None
    if init_from is not None and cfg.train.method == "lora" and not (init_from / "adapter_config.json").is_file():
        init_from = None
    models.release()
    if cfg.train.launcher or cfg.backend.name != "hf":
        stats = _launch_mstep(cfg, it_dir, k, init_from, device, quiet)
    else:
        model, tok, stats = train(rows, cfg.model, cfg.train, it_dir, seed=cfg.data.seed + k, device=device,
                                  init_from=init_from, quiet=quiet)
        models.set(k, model, tok)
    return {**stats, "model_sha256": weights_sha256(it_dir / "model")}


def _rebuild_iterate(it_dir: Path, k: int, models: _Models) -> None:
    """Retrain a finished M-step's iterate from its own train.jsonl and seed. Evidence drawn from
    the first build and not yet complete (a partial evaluation of iterate k, a partial E-step of
    iteration k+1) is kept only when the retrained weights are bit-identical to the first ones;
    otherwise it is set aside as *.stale (never deleted) and redrawn from the iterate in hand."""
    first = read_json(it_dir / "train_stats.json")
    rows = read_jsonl(it_dir / "train.jsonl")
    note(f"iteration {k}: the iterate's weights are not on disk (a run restored from its evidence): "
         f"retraining it from its {len(rows)} training rows")
    start = time.perf_counter()
    stats = _train_iterate(models.cfg, it_dir, k, models, rows, models.device, models.quiet)
    identical = stats["model_sha256"] == first["model_sha256"] if first.get("model_sha256") else None
    stale = []
    if not identical:
        nxt = it_dir.parent / f"iter_{k + 1}"
        drawn = [it_dir / "eval" / "predictions.partial.jsonl"]
        if not (nxt / "estep.json").is_file():  # a finished E-step stands: its summary is written
            drawn.append(nxt / "samples.jsonl")
        for p in drawn:
            if p.is_file():
                p.rename(p.with_name(p.name + ".stale"))
                stale.append(str(p.relative_to(it_dir.parent)))
    write_json(it_dir / "rebuild.json", {
        "train_loss": stats["train_loss"], "first_train_loss": first.get("train_loss"),
        "train_seconds": stats["train_seconds"], "wall_seconds": round(time.perf_counter() - start, 2),
        "model_sha256": stats["model_sha256"],
        "first_model_sha256": first.get("model_sha256"), "identical": identical, "set_aside": stale})
    note(f"iteration {k}: retrained (loss {stats['train_loss']:.4f}, first build {first.get('train_loss')}; "
         f"weights {'identical' if identical else 'not known identical' if identical is None else 'different'}"
         + (f"; set aside {', '.join(stale)}" if stale else "") + ")")


def _launch_mstep(cfg: RunConfig, it_dir: Path, k: int, init_from: Path | None, device: str, quiet: bool) -> dict:
    """The M-step in processes of its own, reading the rows the loop wrote to train.jsonl: under
    `accelerate launch --config_file train.launcher` (DDP, FSDP, DeepSpeed), or, when an engine
    serves generation, one plain child. The engine loads the saved iterate from disk, so the loop's
    process never needs the trained model, and a child returns all the memory training used when it
    exits: in the loop's own process glibc kept much of a 1.5B M-step's (~18 GB on 24 GB), and
    the study's second M-step in one process was OOM-killed (results/README.md)."""
    import subprocess

    marker = it_dir / ".mstep_stats.json"
    marker.unlink(missing_ok=True)
    launch = ["-m", "accelerate.commands.launch", "--config_file", cfg.train.launcher] if cfg.train.launcher else []
    cmd = [sys.executable, *launch, "-m", "emreason.train", str(it_dir.parent), str(k)]
    if not cfg.train.launcher:
        cmd += ["--device", device]
    if init_from is not None:
        cmd += ["--init-from", str(init_from)]
    if quiet:
        cmd.append("--quiet")
    note("M-step: " + " ".join(cmd))
    with stop.forwarding(subprocess.Popen(cmd)) as proc:
        returncode = proc.wait()
    if returncode != 0 and (returncode == stop.EXIT_STOPPED or stop.requested()):
        stop.check(f"during the M-step (its process exited {returncode}; its last checkpoint is kept)",
                   asked="a request to the M-step's process")
    if returncode != 0 or not marker.is_file():
        raise EmreasonError(f"the M-step's process failed (exit {returncode}); its output is "
                            f"above. Fix it and run again with --resume. Command: {' '.join(cmd)}")
    stats = read_json(marker)
    marker.unlink()
    return stats


def _eval_phase(cfg: RunConfig, run_dir: Path, k: int, models: _Models, eval_set, quiet: bool) -> dict:
    out = run_dir / f"iter_{k}" / "eval"
    if (out / "metrics.json").is_file():
        return read_json(out / "metrics.json")
    previous = run_dir / f"iter_{k - 1}" / "eval"
    skipped = k > 0 and read_json(run_dir / f"iter_{k}" / "train_stats.json").get("skipped")
    if skipped and (previous / "metrics.json").is_file():
        shutil.copytree(previous, out, dirs_exist_ok=True)  # M-step skipped: the same model as before
        return read_json(out / "metrics.json")
    shared = _shared_base_eval(cfg, eval_set) if k == 0 else None
    source = None
    if shared is not None:
        source = shared if (shared / "metrics.json").is_file() else _sibling_base_eval(run_dir, shared.name)
    if source is not None:
        shutil.copytree(source, out, dirs_exist_ok=True)
        (out / "predictions.partial.jsonl").unlink(missing_ok=True)  # drawn before the shared one was found
        write_json(out / "shared.json", {"digest": shared.name})
        if source != shared:  # a grid restored on another machine: its evaluations, not its cache
            shutil.copytree(out, shared, dirs_exist_ok=True)
        note(f"iteration 0: reusing the base model's evaluation from {source} (same model, prompts, questions)")
        return read_json(out / "metrics.json")
    backend = models.get(k)
    backend.batch_size = cfg.eval.batch_size
    # In chunks, each appended to a partial log with its marker: a 1.5B evaluation is ~25 minutes
    # on 2 cores, and a stopped one resumes after its last finished chunk. The chunks are fixed,
    # so a resumed evaluation batches (and decodes) exactly what an uninterrupted one would.
    partial = out / "predictions.partial.jsonl"
    records, done = read_sample_log(partial) if partial.is_file() else ([], set())
    size = cfg.eval.chunk_questions
    chunks = [eval_set[i:i + size] for i in range(0, len(eval_set), size)]
    if done:
        note(f"iteration {k}: resuming the evaluation after {len(done)} of {len(chunks)} chunks")
    markers = [r for r in read_jsonl(partial) if "chunk_done" in r] if done else []
    seconds = sum(r.get("seconds") or 0 for r in markers)
    paused = sum(r.get("paused_seconds") or 0 for r in markers)
    here, used = machine(), [r.get("machine") for r in markers]
    cpu = [r.get("cpu_seconds") for r in markers]
    with tqdm(total=len(eval_set), initial=sum(len(chunks[c]) for c in done), unit="q",
              desc=f"iter {k} eval {cfg.eval.mode}", file=sys.stderr, disable=quiet) as bar:
        for c, chunk in enumerate(chunks):
            if c in done:
                continue
            stop.check(f"during iteration {k}'s evaluation, after {len(records)} of {len(eval_set)} questions")
            part = evaluate(backend, chunk, cfg.eval.mode, cfg.prompts, cfg.eval.max_new_tokens,
                            cfg.eval.temperature, seed=cfg.data.seed, progress=bar)
            cpu.append(part.metrics["cpu_seconds"])
            append_jsonl(partial, part.records + [{"chunk_done": c, "seconds": part.metrics["seconds"],
                                                   "paused_seconds": part.metrics["paused_seconds"],
                                                   "cpu_seconds": cpu[-1], "machine": here}])
            records += part.records
            seconds += part.metrics["seconds"]
            paused += part.metrics["paused_seconds"]
            used.append(here)
    m = timed_summary(records, seconds, cfg.eval.mode, paused)
    m["cpu_seconds"] = cpu_total(cpu)
    m["machine"] = machines(used)
    write_jsonl(out / "predictions.jsonl", records)
    write_json(out / "metrics.json", m)
    partial.unlink()
    if shared is not None:
        write_json(out / "shared.json", {"digest": shared.name})
        shutil.copytree(out, shared, dirs_exist_ok=True)
    note(f"iteration {k}: accuracy {m['accuracy']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}] "
         f"parse rate {m['parse_rate']:.2f}, predicted {m['pred_distribution']}")
    return m


def _shared_base_eval(cfg: RunConfig, eval_set) -> Path | None:
    """Where the untrained model's evaluation is kept for every run that shares it: a bundled
    alias (content fixed by sha256), the same backend, questions, prompts and greedy decoding give
    the same predictions, so each sampler of a comparison need not evaluate the base model again.
    prompts.py's own bytes are in the key: it renders the prompts, decides when generation stops
    and reads the answer, so a change there must not reuse an evaluation made under the old rules.
    The folder's name is the key's digest, recorded in each run's iter_0/eval/shared.json."""
    from . import prompts
    from .models import ALIASES, cache_dir

    if cfg.model.name not in ALIASES or cfg.eval.temperature != 0:
        return None
    key = {"model": cfg.model.name, "sha256": ALIASES[cfg.model.name].sha256, "dtype": cfg.model.dtype,
           "backend": cfg.backend.name, "weights": cfg.backend.engine_args.get("weights"),
           "eval": cfg.eval.model_dump(), "prompts": cfg.prompts.model_dump(),
           "dataset": cfg.data.dataset, "split": cfg.data.eval_split, "ids": [e.id for e in eval_set],
           "prompts_py": hashlib.sha256(Path(prompts.__file__).read_bytes()).hexdigest()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "base_evals" / digest


def _sibling_base_eval(run_dir: Path, digest: str) -> Path | None:
    """The base evaluation of another run beside this one (a grid's cells) made under the same
    key: its shared.json names the digest. The cache lives on one machine; run directories restored
    from committed evidence carry their evaluations to the next, so a restored grid's remaining
    cells need not evaluate the base model again (~25 minutes at 1.5B on 2 cores)."""
    for f in sorted(run_dir.parent.glob("*/iter_0/eval/shared.json")):
        ev = f.parent
        if ev.parent.parent != run_dir and read_json(f).get("digest") == digest \
                and (ev / "metrics.json").is_file() and (ev / "predictions.jsonl").is_file():
            return ev
    return None


def _write_metrics(cfg: RunConfig, run_dir: Path, iterations: int) -> list[dict]:
    """metrics.jsonl, rebuilt from the per-iteration files (so a resume never duplicates a line)."""
    rows = []
    for k in range(0, iterations + 1):
        it = run_dir / f"iter_{k}"
        ev = it / "eval" / "metrics.json"
        if not ev.is_file():
            continue
        e = read_json(ev)
        row = {"iteration": k, "sampler": cfg.sampler.name, "model": cfg.model.name, "dataset": cfg.data.dataset}
        if (it / "estep.json").is_file():
            row.update(read_json(it / "estep.json"))
        if (it / "train_stats.json").is_file():
            t = read_json(it / "train_stats.json")
            t.pop("train_log", None)
            row.update(t)
        row.update({f"eval_{key}": v for key, v in e.items()})
        rows.append(row)
    write_jsonl(run_dir / "metrics.jsonl", rows)
    return rows


# --- CLI ---------------------------------------------------------------------------------------

def apply_overrides(raw: dict, sets: list[str]) -> dict:
    import yaml

    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise EmreasonError(f"--set {item!r}: use KEY=VALUE, e.g. --set sampler.k=8")
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise EmreasonError(f"--set {item!r}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return raw


def load_run_config(path: str, sets: list[str] = ()) -> RunConfig:
    raw = apply_overrides(read_yaml(path), list(sets))
    raw.setdefault("name", Path(path).stem)
    return validate(RunConfig, raw, source=str(path))


def run_from_cli(args) -> int:
    with stop.on_signals():  # SIGTERM, SIGUSR1, a first Ctrl-C: stop at the next safe point (emreason.stop)
        return _run_from_cli(args)


def _run_from_cli(args) -> int:
    raw = apply_overrides(read_yaml(args.config), list(args.set))
    if "grid" in raw:
        from .grid import run_grid

        out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
        if args.overwrite:
            raise EmreasonError("--overwrite is not for grids: delete a cell's directory to redo it")
        for name, status in run_grid(raw, out, args.config, args.quiet, args.only):
            print(f"{name}: {status}")
        print(f"grid: {out}  (emreason report {out} --out REPORT_DIR)")
        return 0
    if args.only:
        raise EmreasonError("--only selects grid cells: the config has no grid")
    cfg = load_run_config(args.config, args.set)
    run_dir = Path(args.out) if args.out else Path("runs") / cfg.name
    start = time.perf_counter()
    rows = run(cfg, run_dir, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    print(f"run {cfg.name}: {run_dir} ({time.perf_counter() - start:.0f} s)")
    print(f"{'iter':>4} {'accept':>7} {'tok/acc':>8} {'rat.tok':>8} {'loss':>7} {'accuracy':>9} {'95% CI':>15} {'parse':>6}")
    for r in rows:
        tpa = r.get("tokens_per_accepted")
        mrt = r.get("mean_rationale_tokens")
        loss = r.get("train_loss")
        print(f"{r['iteration']:>4} {r.get('accept_rate', float('nan')):>7.3f} {tpa if tpa is None else round(tpa, 1)!s:>8} "
              f"{mrt if mrt is None else round(mrt, 1)!s:>8} {loss if loss is None else round(loss, 3)!s:>7} "
              f"{r['eval_accuracy']:>9.3f} [{r['eval_ci_low']:.3f}, {r['eval_ci_high']:.3f}] {r['eval_parse_rate']:>6.2f}")
    return 0
