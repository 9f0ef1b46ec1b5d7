#!/usr/bin/env python
"""Converts CMRC 2018 / HW7 / SQuAD-layout QA data to SQuAD's layout (fairseq_ext.commands.to_squad)."""

from fairseq_ext.commands.to_squad import cli

if __name__ == "__main__":
    cli()
