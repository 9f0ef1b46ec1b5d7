#!/usr/bin/env python
"""SQuAD fine-tuning with transformers' Trainer on the project's features and post-processing (see --help).

    scripts/finetune_hf.py --model hf/tiny --train train.json --valid dev.json --out runs/squad2-hf

The command lives in fairseq_ext.commands.finetune_hf (installed as `roberta-finetune-hf`).
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.finetune_hf:main")
