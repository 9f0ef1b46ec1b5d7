#!/usr/bin/env python
"""SQuAD fine-tuning with transformers' Trainer on the project's features and post-processing (see --help).

    scripts/finetune_hf.py --model hf/tiny --train train.json --valid dev.json --out runs/squad2-hf
"""

from fairseq_ext.cli import run_cli
from fairseq_ext.commands.finetune_hf import main

if __name__ == "__main__":
    run_cli(main)
