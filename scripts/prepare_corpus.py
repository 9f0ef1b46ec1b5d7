#!/usr/bin/env python
"""Raw text splits -> fairseq data-bin in one streaming pass: GPT-2 BPE + binarization.

The command lives in fairseq_ext.commands.prepare_corpus
(installed as `roberta-prepare-corpus`); --help lists its options.
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.prepare_corpus:main")
