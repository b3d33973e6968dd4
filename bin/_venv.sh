# Sourced by bin/emreason and bin/test: make .venv on first use (or when pyproject.toml changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EMREASON_VENV:-$ROOT/.venv}"
STAMP="$VENV/.emreason-stamp"
# Extras to have installed (bin/test asks for more than bin/emreason); the stamp records the
# pyproject hash and the extras installed, so switching between the two never reinstalls.
EXTRAS="${EMREASON_EXTRAS:-dev}"
hash="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
have_hash=""; have_extras=""
[ -f "$STAMP" ] && read -r have_hash have_extras < "$STAMP"
missing=""
for e in ${EXTRAS//,/ }; do [[ ",$have_extras," == *",$e,"* ]] || missing=1; done
[ "$have_hash" = "$hash" ] || { missing=1; have_extras=""; }
EXTRAS="$(echo "${have_extras:+$have_extras,}$EXTRAS" | tr ',' '\n' | sort -u | paste -sd, -)"
want="$hash $EXTRAS"
if [ ! -x "$VENV/bin/python" ] || [ -n "$missing" ]; then
  echo "[emreason] setting up $VENV (first use: about a minute)" >&2
  PY="${PYTHON:-python3.11}"; command -v "$PY" >/dev/null || PY=python3
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  # torch first, pinned: the CPU wheel on disk (an open range would pull a multi-GB CUDA build).
  echo "torch==2.13.0" > "$VENV/constraints.txt"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" >&2
  case ",$EXTRAS," in *,llamacpp,*) echo "[emreason] building llama.cpp (llama-cpp-python, about 5 minutes)" >&2;; esac
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$VENV/constraints.txt" -e "$ROOT[$EXTRAS]" >&2
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
