#!/usr/bin/env bash
# Binarizes GPT-2 BPE text (bpe_encode.py output) with fairseq-preprocess into a data-bin directory:
# BPE_DIR/data.{train,valid[,test]}.bpe -> DESTDIR/{train,valid,test}.bin/.idx + dict.txt.
# The two-step fairseq route; scripts/prepare_corpus.py gives the same bytes from raw text in one pass.
# The checks and the staged write are in fairseq_ext/commands/preprocess.py (roberta-preprocess --help).
#   PYTHON=EXE: the interpreter (default: the active environment's python, else .venv/bin/python).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" || ! -x "$repo/.venv/bin/python" ]]; then PYTHON=python
  else PYTHON=$repo/.venv/bin/python; fi
fi
# every argument goes to the command (BPE_DIR DESTDIR [DICT] [--workers N], --help): one parser checks them;
# WORKERS=N is the default of --workers
exec "$PYTHON" -m fairseq_ext.commands.preprocess ${WORKERS:+--workers "$WORKERS"} "$@"
