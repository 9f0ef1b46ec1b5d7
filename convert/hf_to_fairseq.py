#!/usr/bin/env python
"""Import a Hugging Face RoBERTa as a verified fairseq model directory (see --help).

    python convert/hf_to_fairseq.py --model FacebookAI/roberta-base --gpt2-bpe gpt2_bpe --out roberta.base

The command lives in fairseq_ext.commands.hf_to_fairseq (installed as `roberta-hf-to-fairseq`).
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.hf_to_fairseq:main")
