#!/usr/bin/env python
"""SQuAD 2.0 evaluation with the arguments and output of the official evaluate-v2.0.py.

The command lives in fairseq_ext.commands.evaluate_squad2
(installed as `roberta-evaluate-squad2`); --help lists its options.
"""

from fairseq_ext.commands.evaluate_squad2 import cli

if __name__ == "__main__":
    cli()
