#!/usr/bin/env bash
# Create bench/.venv-mlflow: the MLflow 3.x anchor used by bench/registry_vs_mlflow.py.
# Kept in its own venv so MLflow never constrains Maestrale's dependencies.
# Idempotent: a stamp file records a finished install; re-running is a no-op.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-mlflow"
STAMP="$VENV/.anchors-installed"
SPEC=("mlflow>=3,<4" "scikit-learn" "pandas")

export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=1

if [[ -f "$STAMP" && -x "$VENV/bin/python" ]]; then
  echo "anchors already installed: $(cat "$STAMP")"
  exit 0
fi

PY="${PYTHON:-python3}"
start=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# pip prints "Location ... is ignored" warnings for absent local indexes: harmless.
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -m pip install --quiet "${SPEC[@]}" 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" - <<'PY'
import mlflow, sklearn, pandas
assert mlflow.__version__.split(".")[0] == "3", mlflow.__version__
print(f"mlflow {mlflow.__version__} sklearn {sklearn.__version__} pandas {pandas.__version__}")
PY
end=$(date +%s)
ver="$("$VENV/bin/python" -c 'import mlflow; print(mlflow.__version__)')"
size="$(du -sh "$VENV" | cut -f1)"
echo "mlflow=$ver install_s=$((end - start)) size=$size" > "$STAMP"
echo "anchors installed: $(cat "$STAMP")"
