"""GPT-2 BPE encoding, a drop-in for fairseq's examples/roberta/multiprocessing_bpe_encoder.py.

Same flags, byte-identical output (each line stripped; empty lines dropped unless --keep-empty; with
several inputs, parallel lines are dropped together), many times faster: see fairseq_ext/corpus/encoders.py.
With --tokenizer DIR of a SentencePiece model it writes pieces instead, as spm_encode --output_format=piece
does (same line handling), the text fairseq-preprocess then binarizes.
"""

from __future__ import annotations

import argparse
import os
import sys

from fairseq_ext.cli import run_cli, worker_count
from fairseq_ext.corpus.drivers import encode_files, tokenizer_files
from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer import Gpt2Bpe, find_tokenizer_dir


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder-json", help="path to encoder.json (default: $GPT2_BPE_DIR/encoder.json)")
    parser.add_argument("--vocab-bpe", help="path to vocab.bpe (default: $GPT2_BPE_DIR/vocab.bpe)")
    parser.add_argument("--tokenizer", "--gpt2-bpe", dest="tokenizer", metavar="DIR",
                        help="tokenizer directory instead of the two files: GPT-2 BPE, or SentencePiece "
                             "(sentencepiece.bpe.model: writes pieces, as spm_encode does)")
    parser.add_argument("--inputs", nargs="+", default=["-"], help="input files to encode ('-': stdin)")
    parser.add_argument("--outputs", nargs="+", default=["-"], help="one output per input ('-': stdout)")
    parser.add_argument("--keep-empty", action="store_true",
                        help="keep empty lines (as empty output lines); RoBERTa's recipe uses this so that "
                             "document boundaries survive for --sample-break-mode complete_doc")
    parser.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                        help="worker processes (default: all %(default)s cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tokenizer is not None:
        if args.encoder_json or args.vocab_bpe:
            raise UserInputError("give --tokenizer or --encoder-json/--vocab-bpe, not both")
        files = tokenizer_files(find_tokenizer_dir(args.tokenizer))
    else:
        if args.encoder_json is None or args.vocab_bpe is None:
            try:
                directory = find_tokenizer_dir()
            except UserInputError as err:
                given, missing = ("--encoder-json", "--vocab-bpe") if args.encoder_json else \
                    ("--vocab-bpe", "--encoder-json")
                if args.encoder_json or args.vocab_bpe:  # the other file was to come from the directory
                    raise UserInputError(f"{given} given without {missing}, and {err}") from None
                raise
            args.encoder_json = args.encoder_json or directory / "encoder.json"
            args.vocab_bpe = args.vocab_bpe or directory / "vocab.bpe"
        files = (Gpt2Bpe.kind, str(args.encoder_json), str(args.vocab_bpe))
    stats = encode_files(args.inputs, args.outputs, files,
                         keep_empty=args.keep_empty, workers=args.workers, progress=not args.quiet,
                         warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    if stats["filtered_empty"]:
        print(f"[EMPTY] filtered {stats['filtered_empty']} lines", file=sys.stderr)
    print(f"encoded {stats['encoded']} of {stats['lines']} lines", file=sys.stderr)
    return 0


def cli() -> None:
    run_cli(main)
