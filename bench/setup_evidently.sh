#!/usr/bin/env bash
# Create bench/.venv-evidently: the Evidently 0.7 anchor used by bench/drift.py.
# Kept in its own venv so Evidently never constrains Maestrale's dependencies; pandas<3 because
# Evidently 0.7 does not support pandas 3.
# Idempotent: a stamp file records a finished install; re-running is a no-op.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-evidently"
STAMP="$VENV/.evidently-installed"
SPEC=("evidently==0.7.*" "pandas<3")

# Evidently collects telemetry only from its UI service, never from the library (its docs); the UI's
# switch is ITERATIVE_DO_NOT_TRACK (evidently.telemetry.DO_NOT_TRACK_ENV). Both set, for anything that asks.
export DO_NOT_TRACK=1
export ITERATIVE_DO_NOT_TRACK=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ -f "$STAMP" && -x "$VENV/bin/python" ]]; then
  echo "evidently already installed: $(cat "$STAMP")"
  exit 0
fi

PY="${PYTHON:-python3}"
start=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# pip prints "Location ... is ignored" warnings for absent local indexes: harmless.
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
set -o pipefail
"$VENV/bin/python" -m pip install --quiet "${SPEC[@]}" 2>&1 | { grep -v "is ignored" || true; }
"$VENV/bin/python" - <<'PY'
import evidently, pandas
from evidently import Report
from evidently.presets import DataDriftPreset
assert evidently.__version__.startswith("0.7."), evidently.__version__
assert int(pandas.__version__.split(".")[0]) < 3, pandas.__version__
print(f"evidently {evidently.__version__} pandas {pandas.__version__}")
PY
end=$(date +%s)
ver="$("$VENV/bin/python" -c 'import evidently; print(evidently.__version__)')"
size="$(du -sh "$VENV" | cut -f1)"
echo "evidently=$ver install_s=$((end - start)) size=$size" > "$STAMP"
echo "evidently installed: $(cat "$STAMP")"
