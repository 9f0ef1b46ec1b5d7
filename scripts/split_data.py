#!/usr/bin/env python
"""Split raw text into train/valid/test at document level: OUTDIR/data.{train,valid,test}.raw.

The command lives in fairseq_ext.commands.split_data
(installed as `roberta-split`); --help lists its options.
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.split_data:main")
