"""Experiment grids: one config that expands to runs over samplers x datasets x models x seeds.

    grid:                              # dotted keys -> lists; the Cartesian product is run
      model.name: [smollm2-135m, qwen2.5-coder-1.5b]
      data.dataset: [arc_easy, arc_challenge]
      sampler.name: [none, direct, rejection, star, pps]
    overrides:                         # settings for the cells that match `when`
      - when: {data.dataset: mmlu}
        set: {data.train_split: val+dev, data.eval_split: test}

Every cell is validated before any model loads, then run as a normal run directory
`OUT/<model>-<dataset>-<sampler>-s<seed>`; a finished cell is skipped and an interrupted one
resumed, so re-running the same command continues the study where it stopped.
"""

from __future__ import annotations

import copy
import itertools
import re
import time
from pathlib import Path

from .config import RunConfig, validate
from .errors import EmreasonError, note
from .models import machine, recorded_machines
from .store import read_json, read_jsonl


def _get(raw: dict, key: str):
    node = raw
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def _set(raw: dict, key: str, value) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise EmreasonError(f"grid key {key!r}: {p} is not a section")
    node[parts[-1]] = value


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).strip("_")[:40] or "x"


def expand(raw: dict, source: str = "config") -> list[tuple[str, RunConfig]]:
    """(cell name, validated config) for every cell of the grid, in a stable order."""
    raw = copy.deepcopy(raw)
    grid = raw.pop("grid")
    overrides = raw.pop("overrides", []) or []
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise EmreasonError(f"{source}: grid must map dotted keys (sampler.name, ...) to non-empty lists")
    if not isinstance(overrides, list) or not all(isinstance(o, dict) and set(o) <= {"when", "set"} for o in overrides):
        raise EmreasonError(f"{source}: overrides must be a list of {{when: {{key: value}}, set: {{key: value}}}}")
    keys = list(grid)
    cells = []
    for values in itertools.product(*(grid[k] for k in keys)):
        cell = copy.deepcopy(raw)
        for k, v in zip(keys, values):
            _set(cell, k, v)
        for o in overrides:
            if all(_get(cell, k) == v for k, v in (o.get("when") or {}).items()):
                for k, v in (o.get("set") or {}).items():
                    _set(cell, k, v)
        name = "-".join(_slug(_get(cell, k) if _get(cell, k) is not None else v)
                        for k, v in zip(("model.name", "data.dataset", "sampler.name"), ("smollm2-135m", "arc_easy", "pps")))
        name += f"-s{_get(cell, 'data.seed') or 0}"
        extra = [k for k in keys if k not in ("model.name", "data.dataset", "sampler.name", "data.seed")]
        name += "".join(f"-{_slug(k.split('.')[-1])}{_slug(_get(cell, k))}" for k in extra)
        cell["name"] = name
        cells.append((name, validate(RunConfig, cell, source=f"{source} [cell {name}]")))
    names = [n for n, _ in cells]
    if len(set(names)) != len(names):
        raise EmreasonError(f"{source}: two grid cells share a name; give each a distinct value")
    return cells


def is_finished(run_dir: Path, cfg: RunConfig) -> bool:
    state = run_dir / "state.json"
    if not state.is_file() or not (run_dir / "metrics.jsonl").is_file():
        return False
    s = read_json(state)
    expected = 1 if cfg.sampler.name == "direct" else (0 if cfg.sampler.name == "none" else cfg.iterations)
    return s.get("phase") == "done" and s.get("iteration") == expected


def run_grid(raw: dict, out: Path, source: str, quiet: bool = False, only: str | None = None) -> list[tuple[str, str]]:
    """Run every cell (skipping finished ones); returns (cell, status) pairs."""
    from .loop import run

    cells = expand(raw, source)
    if only:
        cells = [(n, c) for n, c in cells if re.search(only, n)]
        if not cells:
            raise EmreasonError(f"--only {only!r} matches no cell")
    preflight([(n, c) for n, c in cells if not is_finished(out / n, c)])
    statuses = []
    for i, (name, cfg) in enumerate(cells, 1):
        run_dir = out / name
        if is_finished(run_dir, cfg):
            statuses.append((name, "finished earlier"))
            continue
        note(f"grid cell {i}/{len(cells)}: {name}")
        start = time.perf_counter()
        run(cfg, run_dir, resume=True, quiet=quiet)
        statuses.append((name, f"done in {time.perf_counter() - start:.0f} s"))
    return statuses


def preflight(cells: list[tuple[str, RunConfig]]) -> None:
    """Check what each cell still to run names (its model, its dataset's two splits) before the
    first one starts: a typo in a grid's last model or a missing split would otherwise surface only
    when that cell's turn comes, hours into a study. Nothing is fetched or loaded onto a device."""
    from . import data, models

    names, splits = set(), set()
    for name, cfg in cells:
        try:
            if cfg.model.name not in names:
                models.kind(cfg.model.name)
                names.add(cfg.model.name)
            for split in (cfg.data.train_split, cfg.data.eval_split):
                if (key := (cfg.data.dataset, split, cfg.data.data_dir)) not in splits:
                    data.load(*key)
                    splits.add(key)
        except EmreasonError as e:
            raise EmreasonError(f"grid cell {name}: {e} (no cell was started)") from None


# --- where a study stands -----------------------------------------------------------------------

def cell_status(run_dir: Path, cfg: RunConfig | None = None) -> dict:
    """What a run directory holds: its phase and how far into it, whether a live process holds its
    lock, the last evaluated accuracy, and the machine time its files record. Read-only, from the
    files the loop writes, so it can watch a study that another process is running."""
    from .loop import RunLock

    out = {"name": run_dir.name, "state": "not started", "progress": "", "running": False,
           "accuracy": None, "iteration": None, "hours": 0.0, "machines": [], "model": None, "sampler": None,
           "dataset": None}
    if cfg is not None:
        out["model"], out["sampler"], out["dataset"] = cfg.model.name, cfg.sampler.name, cfg.data.dataset
    if not (run_dir / "run.json").is_file():
        return out
    cfg = cfg or RunConfig.model_validate(read_json(run_dir / "run.json")["config"])
    out["model"], out["sampler"], out["dataset"] = cfg.model.name, cfg.sampler.name, cfg.data.dataset
    out["running"] = RunLock(run_dir).holder()[0] == "alive"
    metrics = read_jsonl(run_dir / "metrics.jsonl")  # read_jsonl drops a line another process is still writing
    if metrics:
        out["accuracy"], out["iteration"] = metrics[-1].get("eval_accuracy"), metrics[-1]["iteration"]
    seconds = sum((m.get("estep_seconds") or 0) + (m.get("train_seconds") or 0) + (m.get("eval_seconds") or 0)
                  for m in metrics)
    state = read_json(run_dir / "state.json") if (run_dir / "state.json").is_file() else {"iteration": 0, "phase": "eval"}
    k, phase = state.get("iteration", 0), state.get("phase")
    it = run_dir / f"iter_{k}"
    phases = [*metrics]
    if k > (metrics[-1]["iteration"] if metrics else -1):  # the phases already finished in the running iteration
        for name, key in (("estep.json", "estep_seconds"), ("train_stats.json", "train_seconds")):
            if (it / name).is_file():
                phases.append(read_json(it / name))
                seconds += phases[-1].get(key) or 0
    out["hours"] = round(seconds / 3600, 2)
    out["machines"] = recorded_machines(phases)
    if phase == "done" or is_finished(run_dir, cfg):
        out["state"] = "done"
        return out
    if phase == "estep":
        asked = {r["question_id"] for r in read_jsonl(it / "samples.jsonl") if "question_id" in r}
        out["state"], out["progress"] = f"iteration {k}: E-step", f"{len(asked)}/{cfg.data.train_size or '?'} questions sampled"
    elif phase == "mstep":
        steps = [int(p.name.split("-")[-1]) for p in (it / "logs").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
        out["state"] = f"iteration {k}: M-step"
        out["progress"] = f"checkpoint at step {max(steps)}" if steps else "no checkpoint yet"
    else:
        answered = [r for r in read_jsonl(it / "eval" / "predictions.partial.jsonl") if "id" in r]
        out["state"] = f"iteration {k}: evaluation" + (" (base)" if k == 0 else "")
        out["progress"] = f"{len(answered)}/{cfg.data.eval_size or '?'} questions answered"
    return out


def dataset_factors(rows: list[dict]) -> dict[str, float]:
    """How long each dataset's cells take relative to the others: a multiplicative fit, hours ~
    cost(model, sampler) x factor(dataset), over finished cells whose model and sampler have
    finished on more than one dataset, the factors' geometric mean set to 1. MMLU's long questions
    make its cells ~2x an ARC cell, which an estimate from ARC cells alone misses."""
    from statistics import geometric_mean

    groups: dict[tuple, list[tuple]] = {}
    for r in rows:
        if r["state"] == "done" and r["hours"] and r.get("dataset"):
            groups.setdefault((r["model"], r["sampler"]), []).append((r["dataset"], r["hours"]))
    cells = [(k, d, h) for k, g in groups.items() if len({d for d, _ in g}) > 1 for d, h in g]
    factor = {d: 1.0 for _, d, _ in cells}
    if not factor:
        return factor
    for _ in range(100):  # alternating least squares in log space; converges in a few rounds
        cost = {k: geometric_mean([h / factor[d] for kk, d, h in cells if kk == k]) for k in {k for k, _, _ in cells}}
        factor = {d: geometric_mean([h / cost[k] for k, dd, h in cells if dd == d]) for d in factor}
        norm = geometric_mean(list(factor.values()))
        factor = {d: f / norm for d, f in factor.items()}
    return factor


def hours_left(rows: list[dict], factor: dict[str, float] | None = None,
               scale: dict[str, float] | None = None) -> dict[str, float | None]:
    """A rough estimate of the machine hours each unfinished cell still needs, less what it has
    recorded: the mean hours of finished cells with its model and sampler; else another model's
    cells of that sampler, scaled by the two models' ratio on samplers both have finished (a 0.5B
    model's base evaluation predicts its EM cells from the 1.5B's better than its own base cell
    does: an EM cell costs several evaluations). Hours are compared per dataset-neutral unit and
    scaled back by the cell's dataset factor (`dataset_factors`, fitted here unless given), and by
    its model's `scale` where given (`machine_scales`). None where neither exists. It is a guide."""
    factor = dataset_factors(rows) if factor is None else factor
    hours: dict[tuple, list[float]] = {}
    for r in rows:
        if r["state"] == "done" and r["hours"]:
            hours.setdefault((r["model"], r["sampler"]), []).append(r["hours"] / factor.get(r.get("dataset"), 1.0))
    mean = {k: sum(v) / len(v) for k, v in hours.items()}
    out: dict[str, float | None] = {}
    for r in rows:
        if r["state"] == "done":
            continue
        m, s = r["model"], r["sampler"]
        guess = mean.get((m, s))
        if guess is None and m:
            scaled = []
            for m2 in {k[0] for k in mean if k[0] != m and k[1] == s}:
                shared = [x for (mm, x) in mean if mm == m and (m2, x) in mean]
                if shared:
                    ratio = sum(mean[m, x] for x in shared) / sum(mean[m2, x] for x in shared)
                    scaled.append(mean[m2, s] * ratio)
            guess = sum(scaled) / len(scaled) if scaled else None
        if guess is not None:
            guess *= factor.get(r.get("dataset"), 1.0) * (scale or {}).get(m, 1.0)
        out[r["name"]] = None if guess is None else max(0.0, guess - r["hours"])
    return out


def machine_scales(rows: list[dict], here: str) -> dict[str, tuple[float, int]]:
    """How many times the hours predicted from other machines' cells each model's cells took on
    `here`: per model, the geometric mean of (hours / `hours_left`'s estimate from the cells that
    did not run here) over its finished cells that ran only here, with their count. A study
    resumed across machines mixes them: the 1.5B's OpenBookQA rejection cell took 5.3 h on a CPU
    without bf16 units, where its ARC cells, trained in bf16 elsewhere, predicted 2.7 h."""
    from statistics import geometric_mean

    mine = [r for r in rows if r["state"] == "done" and r["machines"] == [here] and r["hours"]]
    ref = [r for r in rows if r["state"] == "done" and here not in r["machines"]]
    guess = hours_left(ref + [dict(r, state="not started", hours=0.0) for r in mine], dataset_factors(ref))
    ratios: dict[str, list[float]] = {}
    for r in mine:
        if guess.get(r["name"]):
            ratios.setdefault(r["model"], []).append(r["hours"] / guess[r["name"]])
    return {m: (geometric_mean(v), len(v)) for m, v in ratios.items()}


def estimate(rows: list[dict], here: str) -> tuple[dict[str, float | None], dict[str, float], dict[str, tuple[float, int]]]:
    """`status`'s estimate for the machine it runs on: hours left per unfinished cell, the dataset
    factors and the machine scales it used. A model's finished cells that ran only here enter
    through its scale, not the means, so a slow machine's cells do not skew the other machines'
    figures (nor the dataset factors) that the scale multiplies."""
    scales = machine_scales(rows, here)
    pool = [r for r in rows if not (r["state"] == "done" and r["machines"] == [here] and r["model"] in scales)]
    factors = dataset_factors(pool)
    return hours_left(pool, factors, {m: s for m, (s, _) in scales.items()}), factors, scales


def study_status(paths: list[str], config: str | None = None) -> list[dict]:
    """cell_status of every cell of a grid config (in its order, not-started ones included) under
    `paths[0]`, or of every run directory found under `paths`."""
    if config:
        from .config import read_yaml

        raw = read_yaml(config)
        if "grid" not in raw:
            raise EmreasonError(f"--config {config} has no grid: pass the run directory itself")
        return [cell_status(Path(paths[0]) / name, cfg) for name, cfg in expand(raw, config)]
    dirs = []
    for p in map(Path, paths):
        if not p.exists():
            raise EmreasonError(f"{p} not found: pass run directories or folders that hold them")
        dirs += [p] if (p / "run.json").is_file() else sorted(x.parent for x in p.glob("*/run.json"))
    if not dirs:
        raise EmreasonError(f"no run directory (run.json) under {', '.join(paths)}")
    return [cell_status(d) for d in dirs]


def status_from_cli(args) -> int:
    rows = study_status(args.runs, args.config)
    left, factors, scales = estimate(rows, here := machine())
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        acc = "" if r["accuracy"] is None else f"accuracy {r['accuracy']:.3f} (it {r['iteration']})"
        what = r["state"] + (f", {r['progress']}" if r["progress"] else "") + (" [running]" if r["running"] else "")
        est = "" if left.get(r["name"]) is None else f"  ~{left[r['name']]:.1f} h left"
        print(f"{r['name']:<{width}}  {what:<58} {acc:<24} {r['hours']:5.2f} h{est}" if r["state"] != "not started"
              else f"{r['name']:<{width}}  not started{est}")
    done = sum(r["state"] == "done" for r in rows)
    known = [v for v in left.values() if v is not None]
    print(f"{done}/{len(rows)} done, {sum(r['hours'] for r in rows):.1f} machine hours recorded"
          + (f"; about {sum(known):.0f} h left for {len(known)} cells (from finished cells of the same model and sampler, or another model's scaled; per-dataset factors)"
             if known else "")
          + (f"; {len(left) - len(known)} cells without an estimate (no finished cell of their sampler, or of their model)"
             if len(known) < len(left) else ""))
    machines = {m: sum(m in r["machines"] for r in rows) for r in rows for m in r["machines"]}
    blind = sum(r["state"] != "not started" and not r["machines"] for r in rows)
    if machines:
        # Hours from different machines are not comparable (results/README.md): say which ran what.
        print("machines the cells' phases recorded: " + "; ".join(f"{m} ({n} cells)" for m, n in machines.items())
              + (f"; {blind} cells record none (their phases ran before emreason recorded the machine)" if blind else ""))
    for m, (x, n) in scales.items():
        print(f"this machine ({here}) ran {m}'s cells in x{x:.2f} the hours other machines' cells predict"
              f" ({n} cells): its estimates are scaled")
    if factors:
        print("dataset factors (hours relative to the average dataset, same model and sampler): "
              + ", ".join(f"{d} x{f:.2f}" for d, f in sorted(factors.items())))
    return 0
