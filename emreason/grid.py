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
from .store import read_json


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
