#!/usr/bin/env python
"""Export a fairseq RoBERTa checkpoint to a verified Hugging Face model directory (see --help).

    python convert/fairseq_to_hf.py --checkpoint runs/squad2/checkpoint_best.pt --gpt2-bpe gpt2_bpe \\
        --out hf/roberta-squad2

The command lives in fairseq_ext.commands.fairseq_to_hf (installed as `roberta-fairseq-to-hf`).
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.fairseq_to_hf:main")
