#!/usr/bin/env bash
# Copy a run's evidence into results/ without model weights: configs, metrics, E-step summaries,
# training stats, and the sample logs, training rows and predictions gzip-compressed
# (emreason report reads the .gz files directly). A mirror: a file gone from a collected run (a
# partial log its finished phase replaced) goes from the copy too; what the copy holds beside the
# runs (results/paper/report) is left alone.
#   results/collect.sh runs/smollm2-arc_easy-pps results/smollm2-arc_easy/pps
set -euo pipefail
src=$1 dst=$2
mkdir -p "$dst"
(cd "$src" && find . -type f ! -path '*/model/*' ! -path '*/logs/*' ! -path '*/.model.tmp/*' ! -name '.lock' -print0) |
  while IFS= read -r -d '' f; do mkdir -p "$dst/$(dirname "$f")"; cp "$src/$f" "$dst/$f"; done
# -n: no name/time stamp, so an unchanged file gives the same bytes
find "$dst" \( -name '*.jsonl' -o -name '*.jsonl.stale' \) ! -name metrics.jsonl -exec gzip -9nf {} \;
(cd "$dst" && find . -type f -print0) | while IFS= read -r -d '' f; do
  top=${f#./}; top=${top%%/*}
  [ -e "$src/$top" ] || continue
  [ -e "$src/$f" ] || [ -e "$src/${f%.gz}" ] || { rm "$dst/$f"; echo "[collect] removed $f (gone from $src)"; }
done
