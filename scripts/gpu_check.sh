#!/usr/bin/env bash
# GPU check: fairseq vs a plain transformers loop, words/s and peak GPU memory, on one GPU, for a
# roberta-base-sized model (random init, fp16): continued masked-LM pretraining and SQuAD v2 fine-tuning,
# a few hundred updates each, in a few minutes (scripts/gpu_check.py has the details).
#   scripts/gpu_check.sh [--updates N] [--out DIR] [--shared-dir DIR]
#   scripts/gpu_check.sh --dry-run     tiny model on CPU, a few updates: checks the script itself
#   PYTHON=EXE: the interpreter (default: the active environment's python, else .venv/bin/python).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" || ! -x "$repo/.venv/bin/python" ]]; then PYTHON=python
  else PYTHON=$repo/.venv/bin/python; fi
fi
GPU_CHECK_PROG=$(basename "$0") exec "$PYTHON" "$repo/scripts/gpu_check.py" "$@"
