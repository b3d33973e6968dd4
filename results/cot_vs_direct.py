"""Where the 1.5B model's rationale costs it on ARC-Easy (results/README.md, session 9): the
questions only its direct answer gets right, and each EM column's first iterate against that
direct answer (McNemar). Reads only the committed files:  .venv/bin/python results/cot_vs_direct.py"""

from collections import Counter

from emreason.evaluate import mcnemar
from emreason.report import find_runs

runs = {r.name: r for r in find_runs(["results/paper"])}
cell = "qwen2.5-coder-1.5b-arc_easy-"
cot = {r["id"]: r for r in runs[cell + "none-s0"].prediction_rows(0)}
direct = runs[cell + "direct-s0"].predictions(0)  # the untrained model answering directly
lost = [q for q in cot if direct[q] and not cot[q]["correct"]]
print(f"only the direct answer right: {len(lost)}; the rationale's answer there:",
      dict(Counter("wrong letter" if cot[q]["pred"] else "none read" for q in lost)),
      f"; its mean length {sum(cot[q]['tokens'] for q in lost) / len(lost):.0f} tokens",
      f"(all answers {sum(r['tokens'] for r in cot.values()) / len(cot):.0f})")
for s in ("rejection", "star", "pps"):
    it1 = runs[f"{cell}{s}-s0"].predictions(1)
    t = mcnemar([direct[q] for q in sorted(direct)], [it1[q] for q in sorted(direct)])
    print(f"{s} iteration 1 - base direct: {t['diff']:+.3f}, p = {t['p_value']:.2g} ({t['only_a']} vs {t['only_b']})")
