#!/usr/bin/env python
"""SQuAD v2 evaluation of an exported model with transformers only (see --help).

    python convert/evaluate_hf.py --model hf/roberta-squad2 --data dev-v2.0.json --out runs/eval-hf
"""

from fairseq_ext.cli import run_cli
from fairseq_ext.commands.evaluate_hf import main

if __name__ == "__main__":
    run_cli(main)
