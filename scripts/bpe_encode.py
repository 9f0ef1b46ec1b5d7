#!/usr/bin/env python
"""GPT-2 BPE encoding, a drop-in for fairseq's examples/roberta/multiprocessing_bpe_encoder.py.

The command lives in fairseq_ext.commands.bpe_encode
(installed as `roberta-bpe-encode`); --help lists its options.
"""

from fairseq_ext.commands.bpe_encode import cli

if __name__ == "__main__":
    cli()
