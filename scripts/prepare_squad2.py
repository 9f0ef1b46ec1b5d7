#!/usr/bin/env python
"""Builds the SQuAD features for fairseq fine-tuning once: the task squad2 reads them every epoch.

The command lives in fairseq_ext.commands.prepare_squad2
(installed as `roberta-prepare-squad2`); --help lists its options.
"""

from fairseq_ext.commands.prepare_squad2 import cli

if __name__ == "__main__":
    cli()
