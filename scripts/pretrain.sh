#!/usr/bin/env bash
# Masked-LM pretraining with fairseq-hydra-train, from scratch or continued from a checkpoint, after
# one-line pre-flight checks (data, checkpoint, dictionary size, max_update). Rerunning the same
# command after an interruption resumes from SAVE_DIR/checkpoint_last.pt.
#   scripts/pretrain.sh --config NAME --data DIR --save-dir DIR [--restore CKPT] [KEY=VALUE ...]
#   NAME: a config in configs/pretraining (tiny, roberta_base_continue) or a YAML path.
#   KEY=VALUE: hydra overrides for fairseq-hydra-train, e.g. optimization.max_update=20000.
#   PYTHON=EXE: the interpreter (default: the active environment's python, else .venv/bin/python).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 --config NAME --data DIR --save-dir DIR [--restore CKPT] [KEY=VALUE ...] (--help for more)"
[[ $# -gt 0 ]] || { echo "$usage" >&2; exit 2; }
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" || ! -x "$repo/.venv/bin/python" ]]; then PYTHON=python
  else PYTHON=$repo/.venv/bin/python; fi
fi
exec "$PYTHON" "$repo/scripts/launch_train.py" --config-dir "$repo/configs/pretraining" "$@"
