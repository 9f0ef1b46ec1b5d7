#!/usr/bin/env bash
# Binarizes GPT-2 BPE text (bpe_encode.py output) with fairseq-preprocess into a data-bin directory:
# BPE_DIR/data.{train,valid[,test]}.bpe -> DESTDIR/{train,valid,test}.bin/.idx + dict.txt.
# The two-step fairseq route; scripts/prepare_corpus.py gives the same bytes from raw text in one pass.
# The checks and the staged write are in fairseq_ext/commands/preprocess.py.
#   PYTHON=EXE: the interpreter (default: the active environment's python, else .venv/bin/python).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 BPE_DIR DESTDIR [DICT]   (DICT default: \$GPT2_BPE_DIR/dict.txt; WORKERS default: nproc)"
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "$usage"; exit 0; }
[[ $# -ge 2 && $# -le 3 ]] || { echo "$usage" >&2; exit 2; }
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" || ! -x "$repo/.venv/bin/python" ]]; then PYTHON=python
  else PYTHON=$repo/.venv/bin/python; fi
fi
exec "$PYTHON" -m fairseq_ext.commands.preprocess "$@" --workers "${WORKERS:-$(nproc)}"
