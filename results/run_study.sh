#!/usr/bin/env bash
# The comparison study on this 2-core machine: configs/paper.yaml's cells in order of importance,
# one at a time (each uses both cores). Re-run to resume: finished cells are skipped, an interrupted
# one continues from its last finished E-step chunk or phase. After each group the finished evidence
# is copied into results/paper (no weights) and the report regenerated; commit them by hand, partial
# cells too: on a fresh clone this script first restores runs/paper from results/paper
# (results/restore.sh) and goes on from there, retraining a missing iterate when it is needed.
#   mkdir -p runs && nohup results/run_study.sh > runs/study.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
# Stop it with `kill -TERM -- -PGID` (the script's process group): the run in flight stops at its
# next safe point (emreason.stop: after the chunk or M-step step in flight, exit 75), and bash runs
# this trap once that run has exited, so no further group starts.
trap 'echo "[study] $(date -u +%FT%TZ) stop signal: the study stops"; exit 75' TERM USR1
# Session 31: a bf16 M-step of the 1.5B was OOM-killed at 23.9 GB; with glibc's mmap threshold fixed
# at 4 MB it finished at 16.4 GB (not a controlled comparison; BENCHMARKS.md, "M-step memory at 1.5B").
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-4194304}
groups=(
  '^qwen2.5-coder-1.5b-arc_easy-(none|pps)-'         # the model that reasons: the issue's priority
  '^qwen2.5-coder-1.5b-arc_easy-star-'
  '^smollm2-135m-arc_easy-'                          # a complete Llama-family row (finished cells are skipped)
  '^qwen2.5-coder-1.5b-arc_easy-rejection-'
  '^qwen2.5-coder-1.5b-arc_easy-direct-'
  '^qwen2.5-coder-1.5b-arc_challenge-(none|direct|pps)-' # direct is cheap (0.5 h) and gives the base's direct answers
  '^qwen2.5-coder-1.5b-arc_challenge-(star|rejection|direct)-'
  '^smollm2-135m-(arc_challenge|openbookqa)-'
  '^qwen2.5-coder-0.5b-arc_easy-'                   # a second Qwen model on a row both families have
  '^smollm2-135m-mmlu-'                              # every dataset with a complete row
  # Session 16: the 0.5B's first EM cell took 2.7 h, not the ~1 h first estimated, so the
  # 1.5B (the model that reasons, ~3.4 h a cell) takes the Qwen family to OpenBookQA and MMLU first.
  '^qwen2.5-coder-1.5b-openbookqa-'
  # Session 20: this machine (AVX2, no bf16 units) trains the 1.5B in float32 at 11.8 tokens/s,
  # against the 35.9 (bf16) its ARC-Challenge direct cell recorded, and samples at about half the
  # speed: a 1.5B EM cell here takes ~6-9 h, its MMLU row (MMLU x1.77 in `emreason status`) ~60 h.
  # The 0.5B (its ARC-Easy cells trained in float32, as here; ~32 h for three rows) takes the
  # Qwen family to MMLU first, then completes its rows; the 1.5B's MMLU row comes last.
  '^qwen2.5-coder-0.5b-mmlu-(none|direct)-'
  # Session 27: on MMLU the 0.5B is at chance untrained and after direct fine-tuning (CoT 0.247,
  # direct answer 0.277, direct FT 0.280; always D 0.267), where SmolLM2's EM cells learned letter
  # habits, not reasoning. So the 1.5B's MMLU row, the model that reasons (~42 h here), runs before
  # the 0.5B's MMLU EM cells (~24 h) and its ARC-Challenge and OpenBookQA rows (~21 h).
  '^qwen2.5-coder-1.5b-mmlu-'
  '^qwen2.5-coder-0.5b-mmlu-'
  '^qwen2.5-coder-0.5b-(arc_challenge|openbookqa)-'
)
results/restore.sh results/paper runs/paper
# Touched after each collect: a group that wrote nothing since (a finished one, walked on resume)
# skips the collect and report, ~30 s each on this machine. Without it (a fresh clone, or a runs/
# from before the stamp) the first group collects.
collected=runs/.study-collected
for only in "${groups[@]}"; do
  echo "[study] $(date -u +%FT%TZ) group $only"
  bin/emreason run configs/paper.yaml --out runs/paper --only "$only"
  if [ ! -e "$collected" ] || [ -n "$(find runs/paper -newer "$collected" -print -quit)" ]; then
    results/collect.sh runs/paper results/paper
    bin/emreason report results/paper --out results/paper/report > /dev/null
    touch "$collected"
  fi
done
