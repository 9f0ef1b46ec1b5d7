#!/usr/bin/env python
"""SQuAD v2 evaluation of an exported model with transformers only (see --help).

    python convert/evaluate_hf.py --model hf/roberta-squad2 --data dev-v2.0.json --out runs/eval-hf

The command lives in fairseq_ext.commands.evaluate_hf (installed as `roberta-evaluate-hf`).
"""

from fairseq_ext.commands.evaluate_hf import cli

if __name__ == "__main__":
    cli()
