#!/usr/bin/env python
"""GPT-2 BPE encoding, a drop-in for fairseq's examples/roberta/multiprocessing_bpe_encoder.py.

The command lives in fairseq_ext.commands.bpe_encode
(installed as `roberta-bpe-encode`); --help lists its options.
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.bpe_encode:main")
