#!/usr/bin/env python
"""Trains a SentencePiece model + XLM-R-layout dict.txt for a corpus (fairseq_ext.commands.train_spm)."""

from fairseq_ext.commands.train_spm import cli

if __name__ == "__main__":
    cli()
