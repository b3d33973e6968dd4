#!/usr/bin/env bash
# The inverse of collect.sh: rebuild run directories from committed evidence, so a fresh clone
# resumes the study where the last commit left it. Cells already in the destination are left alone.
# No weights are committed: the loop retrains a finished M-step's iterate from its train.jsonl
# when a later phase needs it (loop._rebuild_iterate), and finished cells need none.
#   results/restore.sh results/paper runs/paper
set -euo pipefail
src=$1 dst=$2
mkdir -p "$dst"
for cell in "$src"/*/; do
  cell=${cell%/}; name=$(basename "$cell")
  [ -f "$cell/run.json" ] && [ ! -e "$dst/$name" ] || continue
  cp -r "$cell" "$dst/$name"
  find "$dst/$name" -name '*.jsonl.gz' -exec gunzip -f {} \;
  echo "[restore] $name"
done
