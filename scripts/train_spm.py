#!/usr/bin/env python
"""Trains a SentencePiece model + XLM-R-layout dict.txt for a corpus (fairseq_ext.commands.train_spm)."""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.train_spm:main")
