#!/usr/bin/env python
"""Answers the questions of a SQuAD file with a fine-tuned roberta_span_qa checkpoint.

The command lives in fairseq_ext.commands.predict_squad2
(installed as `roberta-predict-squad2`); --help lists its options.
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.predict_squad2:main")
