"""Rebuilds GPT-2's encoder.json from its vocab.bpe, offline: the 256 byte symbols, one token per merge,
then <|endoftext|> (fairseq_ext.tokenizer.gpt2.encoder_from_merges). For the official vocab.bpe the result
is byte-identical to the official encoder.json; scripts/get_gpt2_bpe.sh uses it and checks the sha256."""

from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

from fairseq_ext.cli import existing_file, run_cli
from fairseq_ext.outputs import write_text_file
from fairseq_ext.tokenizer.gpt2 import encoder_from_merges, read_merges


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="gpt2_encoder", description=__doc__)
    parser.add_argument("vocab_bpe", metavar="VOCAB_BPE", help="GPT-2's vocab.bpe (merges.txt)")
    parser.add_argument("encoder_json", metavar="ENCODER_JSON", help="the encoder.json to write")
    args = parser.parse_args(argv)
    vocab_bpe = existing_file(args.vocab_bpe, "vocab.bpe")
    encoder = encoder_from_merges(read_merges(vocab_bpe))
    write_text_file(args.encoder_json, json.dumps(encoder), inputs=[vocab_bpe])
    print(f"wrote {args.encoder_json}: {len(encoder)} tokens")
    return 0


if __name__ == "__main__":
    run_cli(main)
