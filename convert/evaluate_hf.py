#!/usr/bin/env python
"""SQuAD v2 evaluation of an exported model with transformers only (see --help).

    python convert/evaluate_hf.py --model hf/roberta-squad2 --data dev-v2.0.json --out runs/eval-hf

The command lives in fairseq_ext.commands.evaluate_hf (installed as `roberta-evaluate-hf`).
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.evaluate_hf:main")
