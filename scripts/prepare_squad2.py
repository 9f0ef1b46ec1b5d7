#!/usr/bin/env python
"""Builds the SQuAD features for fairseq fine-tuning once: the task squad2 reads them every epoch.

The command lives in fairseq_ext.commands.prepare_squad2
(installed as `roberta-prepare-squad2`); --help lists its options.
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.prepare_squad2:main")
