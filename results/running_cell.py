"""A running cell's last evaluated iterate against its row's base and direct columns and its
finished EM columns' iterate of the same iteration (McNemar), which the report leaves out until the
cell finishes. Reads only the committed files (results/README.md):
  .venv/bin/python results/running_cell.py qwen2.5-coder-1.5b-openbookqa-rejection-s0"""

import sys
from pathlib import Path

from emreason.evaluate import mcnemar
from emreason.report import find_runs
from emreason.store import read_rows


def main(name: str, root: Path = Path("results/paper")) -> None:
    (run,) = find_runs([str(root / name)])
    it, m = run.final["iteration"], run.final
    this = run.predictions(it)
    print(f"{name}, iteration {it}: {m['eval_accuracy']:.3f} [{m['eval_ci_low']:.3f}, {m['eval_ci_high']:.3f}], "
          f"{m['eval_mean_rationale_tokens']:.0f} tokens per answer")
    model_dataset, seed = name.rsplit("-", 2)[0], name.rsplit("-", 1)[1]
    em = [(f"{s} (iteration {it})", s, it) for s in ("rejection", "star", "pps") if not name.endswith(f"-{s}-{seed}")]
    for label, other, k in (("base CoT", "none", 0), ("base direct answer", "direct", 0), ("direct FT", "direct", 1), *em):
        sibling = root / f"{model_dataset}-{other}-{seed}"
        if not (sibling / "run.json").is_file() or k not in {r["iteration"] for r in read_rows(sibling / "metrics.jsonl")}:
            continue  # not started, or not evaluated at iteration k yet
        (ref,) = find_runs([str(sibling)])
        pa = ref.predictions(k)
        common = sorted(pa.keys() & this.keys())
        t = mcnemar([pa[q] for q in common], [this[q] for q in common])
        print(f"  - {label}: {t['diff']:+.3f} [{t['diff_ci_low']:+.3f}, {t['diff_ci_high']:+.3f}], "
              f"{t['only_b']} gained, {t['only_a']} lost, p = {t['p_value']:.2g} (n = {len(common)})")


if __name__ == "__main__":
    main(sys.argv[1])
