#!/usr/bin/env python
"""Answer questions with an exported model, transformers only (see --help).

    python convert/predict_hf.py --model hf/roberta-squad2 --question "Who ...?" --context "..."
"""

from fairseq_ext.cli import run_cli
from fairseq_ext.commands.predict_hf import main

if __name__ == "__main__":
    run_cli(main)
