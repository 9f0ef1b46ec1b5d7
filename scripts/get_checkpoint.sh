#!/usr/bin/env bash
# Puts one of fairseq's released checkpoints (roberta.base, roberta.large, xlmr.base, xlmr.large) into a
# checked model directory (model.pt, dict.txt, ...): downloaded from fairseq's official URL, or
# --copy-from a local archive or unpacked copy. Logic: fairseq_ext/commands/get_checkpoint.py.
#   PYTHON=EXE: the interpreter (default: the active environment's python, else .venv's).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 NAME [--dest DIR] [--copy-from ARCHIVE_OR_DIR] [--sha256 HEX] [--force]  (--help: more)"
[[ $# -ge 1 ]] || { echo "$usage" >&2; exit 2; }
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" || ! -x "$repo/.venv/bin/python" ]]; then PYTHON=python
  else PYTHON=$repo/.venv/bin/python; fi
fi
PYTHONSAFEPATH=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m fairseq_ext.commands.get_checkpoint "$@"
