"""A running cell's last evaluated iterate against its row's base and direct columns (McNemar), which
the report leaves out until the cell finishes. Reads only the committed files (results/README.md):
  .venv/bin/python results/running_cell.py qwen2.5-coder-1.5b-openbookqa-rejection-s0"""

import gzip
import json
import sys
from pathlib import Path

from emreason.evaluate import mcnemar


def correct(cell: Path, it: int) -> dict[str, bool]:
    ev = cell / f"iter_{it}" / "eval"
    path = ev / "predictions.jsonl" if (ev / "predictions.jsonl").is_file() else ev / "predictions.jsonl.gz"
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt") as f:
        return {r["id"]: r["correct"] for r in map(json.loads, f)}


def main(name: str, root: Path = Path("results/paper")) -> None:
    cell = root / name
    metrics = [json.loads(l) for l in (cell / "metrics.jsonl").read_text().splitlines() if l.strip()]
    it = metrics[-1]["iteration"]
    prefix = name.rsplit("-", 2)[0]  # model-dataset
    seed = name.rsplit("-", 1)[1]
    this = correct(cell, it)
    print(f"{name}, iteration {it}: {metrics[-1]['eval_accuracy']:.3f} [{metrics[-1]['eval_ci_low']:.3f}, "
          f"{metrics[-1]['eval_ci_high']:.3f}], {metrics[-1]['eval_mean_rationale_tokens']:.0f} tokens per answer")
    for label, other, k in (("base CoT", "none", 0), ("base direct answer", "direct", 0), ("direct FT", "direct", 1)):
        d = root / f"{prefix}-{other}-{seed}"
        if not (d / f"iter_{k}" / "eval").is_dir():
            continue
        ref = correct(d, k)
        common = sorted(ref.keys() & this.keys())
        t = mcnemar([ref[q] for q in common], [this[q] for q in common])
        print(f"  - {label}: {t['diff']:+.3f} [{t['diff_ci_low']:+.3f}, {t['diff_ci_high']:+.3f}], "
              f"{t['only_b']} gained, {t['only_a']} lost, p = {t['p_value']:.2g} (n = {len(common)})")


if __name__ == "__main__":
    main(sys.argv[1])
