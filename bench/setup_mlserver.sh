#!/usr/bin/env bash
# Create bench/.venv-mlserver: MLServer 1.7.1 (the serving anchor of bench/serving.py) with Maestrale
# installed from this repo, so `mlserver start` can load MaestraleRuntime
# (maestrale.serving.mlserver_runtime) and tests/integration/test_mlserver_runtime.py can run it.
# Kept in its own venv because MLServer 1.7 pins fastapi<0.116 and protobuf<7, older than the
# project venv's; uvloop<0.22 because MLServer 1.7.1 does not start with uvloop 0.22.
# Idempotent: a stamp file records a finished install and the pyproject.toml it installed Maestrale
# from; re-running is a no-op, or a top-up of the same venv when pyproject.toml changed since.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv-mlserver"
STAMP="$VENV/.mlserver-installed"
# mlserver-sklearn: MLServer's own scikit-learn runtime (joblib), the second anchor of bench/serving.py
SPEC=("mlserver==1.7.1" "mlserver-sklearn==1.7.1" "uvloop<0.22" "-e" "$REPO[mlserver]")

export DO_NOT_TRACK=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

PYPROJECT="$(sha256sum "$REPO/pyproject.toml" | cut -c1-12)"
if [[ -f "$STAMP" && -x "$VENV/bin/mlserver" ]] && grep -q "pyproject=$PYPROJECT" "$STAMP"; then
  echo "mlserver already installed: $(cat "$STAMP")"
  exit 0
fi

PY="${PYTHON:-python3}"
start=$(date +%s)
if [[ -f "$STAMP" && -x "$VENV/bin/mlserver" ]]; then
  echo "pyproject.toml changed since bench/.venv-mlserver was made: updating it"
  rm -f "$STAMP"
else
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # pip prints "Location ... is ignored" warnings for absent local indexes: harmless.
  "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
fi
set -o pipefail
"$VENV/bin/python" -m pip install --quiet "${SPEC[@]}" 2>&1 | { grep -v "is ignored" || true; }
"$VENV/bin/python" - <<'PY'
import mlserver, uvloop, sklearn, pandas
import maestrale
from maestrale.serving.mlserver_runtime import MaestraleRuntime  # noqa: F401
assert mlserver.__version__ == "1.7.1", mlserver.__version__
print(f"mlserver {mlserver.__version__} uvloop {uvloop.__version__} sklearn {sklearn.__version__} "
      f"pandas {pandas.__version__} maestrale {maestrale.__version__}")
PY
end=$(date +%s)
ver="$("$VENV/bin/python" -c 'import mlserver; print(mlserver.__version__)')"
skl="$("$VENV/bin/python" -c 'import sklearn; print(sklearn.__version__)')"
size="$(du -sh "$VENV" | cut -f1)"
echo "mlserver=$ver sklearn=$skl install_s=$((end - start)) size=$size pyproject=$PYPROJECT" > "$STAMP"
echo "mlserver installed: $(cat "$STAMP")"
