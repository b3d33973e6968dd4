#!/usr/bin/env bash
# Copy a run's evidence into results/ without model weights: configs, metrics, E-step summaries,
# training stats, and the sample logs, training rows and predictions gzip-compressed
# (emreason report reads the .gz files directly).
#   results/collect.sh runs/smollm2-arc_easy-pps results/smollm2-arc_easy/pps
set -euo pipefail
src=$1 dst=$2
mkdir -p "$dst"
(cd "$src" && find . -type f ! -path '*/model/*' ! -path '*/logs/*' ! -path '*/.model.tmp/*' ! -name '.lock' -print0) |
  while IFS= read -r -d '' f; do mkdir -p "$dst/$(dirname "$f")"; cp "$src/$f" "$dst/$f"; done
find "$dst" -name '*.jsonl' ! -name metrics.jsonl -exec gzip -9nf {} \;  # -n: no name/time stamp, so an unchanged file gives the same bytes
