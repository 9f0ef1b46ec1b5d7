#!/usr/bin/env bash
# SQuAD v2 fine-tuning of a RoBERTa checkpoint with fairseq-hydra-train (task squad2, model
# roberta_span_qa, criterion span_qa), after the same one-line pre-flight checks as pretraining (data,
# checkpoint, dictionary size). The best checkpoint by validation F1 is SAVE_DIR/checkpoint_best.pt.
# SIGUSR1 or SIGTERM saves SAVE_DIR/checkpoint_last.pt after the update in progress and exits 75; rerunning
# the same command after any interruption resumes from it (docs/preemption.md).
#   scripts/finetune_squad2.sh --config NAME --data DIR --restore CKPT --save-dir DIR [--nproc-per-node N]
#                              [--global-batch SEQUENCES] [KEY=VALUE ...]
#   NAME: a config in configs/finetuning (squad2_base, squad2_tiny) or a YAML path.
#   DIR: made by scripts/prepare_squad2.py with the config's window settings.
#   CKPT: a masked-LM checkpoint (its head is dropped, the span head initialised) or a roberta_span_qa one.
#   KEY=VALUE: hydra overrides for fairseq-hydra-train, e.g. optimization.lr=[2e-05].
#   --nproc-per-node N: N data-parallel processes on this machine (one per GPU; gloo on CPU); under torchrun
#   or srun (several tasks) run the same command in every process instead. --global-batch: sequences per
#   update across the processes (the batch size per process and update_freq are derived and printed).
#   PYTHON=EXE: the interpreter (default: the active environment's python, else .venv/bin/python).
# Runs the launcher, fairseq_ext/training/launch.py (installed as `roberta-train`, which takes --config-dir).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 --config NAME --data DIR --restore CKPT --save-dir DIR [KEY=VALUE ...] (--help for more)"
[[ $# -gt 0 ]] || { echo "$usage" >&2; exit 2; }
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" || ! -x "$repo/.venv/bin/python" ]]; then PYTHON=python
  else PYTHON=$repo/.venv/bin/python; fi
fi
# PYTHONSAFEPATH: the current directory stays off sys.path (as for a script file), so that a fairseq/ or
# other checkout there does not shadow the installed packages (Python >= 3.11; ignored before).
ROBERTA_TRAIN_PROG=$(basename "$0") PYTHONSAFEPATH=1 exec "$PYTHON" -m fairseq_ext.training.launch --config-dir "$repo/configs/finetuning" "$@"
