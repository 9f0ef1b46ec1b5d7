#!/usr/bin/env python
"""SQuAD 2.0 evaluation with the arguments and output of the official evaluate-v2.0.py.

The command lives in fairseq_ext.commands.evaluate_squad2
(installed as `roberta-evaluate-squad2`); --help lists its options.
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.evaluate_squad2:main")
