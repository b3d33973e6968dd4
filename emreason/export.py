"""Export a trained iterate as a LoRA adapter or a merged model, with a model card.

The result loads with plain transformers (merged) or peft (adapter); the card records the config,
the data, and the run's metrics per iteration, so the model carries its own provenance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import EmreasonError
from .models import load, run_iterate
from .store import atomic_write_text, read_json


def export(run_dir: Path, out: Path, iteration: int | None = None, merge: bool = False) -> Path:
    if not (run_dir / "run.json").is_file():
        raise EmreasonError(f"{run_dir} is not a run directory (no run.json)")
    src = run_iterate(run_dir / f"iter_{iteration}") if iteration is not None else run_iterate(run_dir)
    if src is None or not src.is_dir():
        raise EmreasonError(f"{run_dir}: no trained iterate{'' if iteration is None else f' {iteration}'} to export")
    if out.exists() and any(out.iterdir()):
        raise EmreasonError(f"{out} exists and is not empty: choose another --out")
    meta = read_json(run_dir / "run.json")
    cfg = meta["config"]
    adapter = (src / "adapter_config.json").is_file()
    if merge or not adapter:
        model, tok = load(str(src), cfg["model"]["dtype"])
        model.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
        kind = "merged model"
    else:
        shutil.copytree(src, out, dirs_exist_ok=True)
        kind = "LoRA adapter"
    metrics = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    k = int(src.parent.name[5:])
    rows = "\n".join(f"| {m['iteration']} | {m.get('accept_rate', '–')} | {m['eval_accuracy']:.3f} "
                     f"[{m['eval_ci_low']:.3f}, {m['eval_ci_high']:.3f}] | {m['eval_n']} |" for m in metrics)
    loading = ("AutoModelForCausalLM.from_pretrained(path)" if kind == "merged model"
               else "peft.AutoPeftModelForCausalLM.from_pretrained(path)")
    card = f"""---
library_name: {'transformers' if kind == 'merged model' else 'peft'}
tags: [emreason, reasoning, expectation-maximization, {cfg['sampler']['name']}]
---
# {cfg.get('name') or run_dir.name}: iterate {k} ({kind})

Trained by [emreason](https://pypi.org/project/emreason/) with the **{cfg['sampler']['name']}** E-step
on `{cfg['data']['dataset']}` ({cfg['data']['train_split']}, {cfg['data']['train_size']} questions, seed
{cfg['data']['seed']}), from `{cfg['model']['name']}`; {cfg['train']['method']} M-step, init
`{cfg['train']['init']}`. Load it with `{loading}`.

It writes a rationale and ends with "The answer is (X)" when prompted as in `emreason.prompts`
(see the config below).

## Evaluation ({cfg['data']['eval_split']}, {cfg['eval']['mode']})

| iteration | accept rate | accuracy [95% CI] | n |
|---|---|---|---|
{rows}

## Config

```json
{json.dumps(cfg, indent=2)}
```
"""
    atomic_write_text(out / "README.md", card)
    return out


def export_from_cli(args) -> int:
    out = export(Path(args.run), Path(args.out), args.iteration, args.merge)
    print(f"exported to {out}")
    return 0
