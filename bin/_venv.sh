# Sourced by bin/emreason and bin/test: make .venv on first use (or when pyproject.toml changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EMREASON_VENV:-$ROOT/.venv}"
STAMP="$VENV/.emreason-stamp"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[emreason] setting up $VENV (first use: about a minute)" >&2
  PY="${PYTHON:-python3.11}"; command -v "$PY" >/dev/null || PY=python3
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  # torch first, pinned: the CPU wheel on disk (an open range would pull a multi-GB CUDA build).
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]" >&2
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
