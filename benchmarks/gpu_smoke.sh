#!/usr/bin/env bash
# GPU smoke test: one tiny EM iteration (the quickstart: PPS, 64 questions) with the E-step on vLLM,
# then the sampled tokens/s. Needs a CUDA GPU; installs the vllm extra into .venv-gpu unless vLLM is
# already importable (pass --no-install to use the current Python as it is). CI never runs this.
#   bash benchmarks/gpu_smoke.sh [--no-install] [--backend vllm|hf] [--model smollm2-135m] [--data-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
backend=vllm model=smollm2-135m install=1 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-install) install=0 ;;
    --backend) backend=$2; shift ;;
    --model) model=$2; shift ;;
    --data-dir) extra+=(--set "data.data_dir=$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PY=python3
if [ "$install" = 1 ] && ! $PY -c "import vllm" 2>/dev/null; then
  $PY -m venv .venv-gpu
  .venv-gpu/bin/pip install -q -e ".[vllm]"   # vLLM brings the CUDA torch it was built for
  PY=.venv-gpu/bin/python
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
out=$(mktemp -d)
$PY -m emreason.cli run configs/quickstart.yaml --out "$out/run" --quiet \
  --set backend.name="$backend" --set backend.device=cuda --set model.name="$model" --set model.dtype=bfloat16 \
  --set generation.batch_size=64 --set eval.batch_size=64 "${extra[@]}"
$PY - "$out/run" "$backend" <<'PYEOF'
import json, sys
from pathlib import Path
run, backend = Path(sys.argv[1]), sys.argv[2]
e = json.loads((run / "iter_1" / "estep.json").read_text())
t = json.loads((run / "iter_1" / "train_stats.json").read_text())
print(f"E-step on {backend}: {e['attempts']} samples, {e['sampled_tokens']} tokens in {e['estep_seconds']} s "
      f"= {e['sampled_tokens'] / e['estep_seconds']:.0f} sampled tokens/s; accepted {e['accepted']}")
if not t.get("skipped"):
    print(f"M-step: {t['train_examples']} examples, {t['train_tokens_per_second']} trained tokens/s")
PYEOF
