#!/usr/bin/env python
"""Answer questions with an exported model, transformers only (see --help).

    python convert/predict_hf.py --model hf/roberta-squad2 --question "Who ...?" --context "..."

The command lives in fairseq_ext.commands.predict_hf (installed as `roberta-predict-hf`).
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.predict_hf:main")
