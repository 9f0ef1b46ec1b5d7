#!/usr/bin/env python
"""Import a Hugging Face RoBERTa as a verified fairseq model directory (see --help).

    python convert/hf_to_fairseq.py --model FacebookAI/roberta-base --gpt2-bpe gpt2_bpe --out roberta.base
"""

from fairseq_ext.cli import run_cli
from fairseq_ext.commands.hf_to_fairseq import main

if __name__ == "__main__":
    run_cli(main)
