#!/usr/bin/env bash
# Creates (or updates) the Python environment: torch, fairseq-fixed built from its sdist into a cached
# wheel, the pinned requirements and this project. Idempotent: a second run with unchanged pins only
# checks the imports.
#   VENV=DIR        environment to create or reuse (default .venv; an active conda env: $CONDA_PREFIX)
#   PYTHON=EXE      interpreter for a new venv (default python3.11)
#   WHEEL_CACHE=DIR where the fairseq wheel is kept (default ~/.cache/roberta-squad2/wheels)
set -euo pipefail
usage="usage: scripts/setup_env.sh  (no arguments: VENV, PYTHON, WHEEL_CACHE from the environment; --help)"
case "${1-}" in
  "") ;;
  -h|--help) echo "$usage"; sed -n '2,7s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
WHEEL_CACHE=${WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roberta-squad2/wheels}
stamp="$VENV/.roberta-squad2-setup"
fingerprint=$(cat requirements.txt pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)

if [[ -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]] \
    && "$VENV/bin/python" -c "import fairseq, fairseq_ext, transformers, tokenizers" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found (set PYTHON=...)" >&2; exit 1; }
  "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
pip=("$py" -m pip install --disable-pip-version-check --no-input -q)
pin() { grep -E "^$1==" requirements.txt; }

# fairseq's build imports torch, numpy and cython, so they come first.
"${pip[@]}" "$(pin torch)" "$(pin numpy)" "$(pin cython)" setuptools wheel

fairseq_pin=$(pin fairseq-fixed)
fairseq_version=${fairseq_pin#*==}
mkdir -p "$WHEEL_CACHE"
wheel=$(ls "$WHEEL_CACHE"/fairseq_fixed-"$fairseq_version"-*.whl 2>/dev/null | head -n1 || true)
if [[ -z "$wheel" ]]; then
  echo "setup: building $fairseq_pin (a few minutes, once; cached in $WHEEL_CACHE)"
  "$py" -m pip wheel --disable-pip-version-check -q --no-build-isolation --no-deps \
    -w "$WHEEL_CACHE" "$fairseq_pin"
  wheel=$(ls "$WHEEL_CACHE"/fairseq_fixed-"$fairseq_version"-*.whl | head -n1)
fi

"${pip[@]}" -r <(grep -v '^fairseq-fixed==' requirements.txt)
"${pip[@]}" --no-deps "$wheel"
"${pip[@]}" --no-deps --no-build-isolation -e .

"$py" -c "import fairseq, fairseq_ext, transformers, tokenizers"
echo "$fingerprint" > "$stamp"
echo "setup: $VENV ready"
