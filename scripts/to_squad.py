#!/usr/bin/env python
"""Converts CMRC 2018 / HW7 / SQuAD-layout QA data to SQuAD's layout (fairseq_ext.commands.to_squad)."""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.to_squad:main")
