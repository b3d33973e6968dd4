"""Record the shared base-evaluation key's digest (iter_0/eval/shared.json) for base evaluations made
before runs recorded it. Valid only where prompts.py has not changed since the evaluation ran."""
import sys
from pathlib import Path

from emreason import data, loop
from emreason.config import RunConfig
from emreason.store import read_json, write_json

for run in map(Path, sys.argv[1:]):
    cfg = RunConfig.model_validate(read_json(run / "run.json")["config"])
    eval_set = data.load(cfg.data.dataset, cfg.data.eval_split, cfg.data.data_dir, cfg.data.eval_size, cfg.data.eval_subset_seed)
    shared = loop._shared_base_eval(cfg, eval_set)
    print(run, shared.name if shared else None)
    if shared is not None and (run / "iter_0" / "eval" / "metrics.json").is_file():
        write_json(run / "iter_0" / "eval" / "shared.json", {"digest": shared.name})
