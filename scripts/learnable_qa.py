#!/usr/bin/env python
"""Writes the learnable SQuAD v2 set (fairseq_ext.commands.learnable_qa)."""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.learnable_qa:main")
