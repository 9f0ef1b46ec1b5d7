"""Raw text splits -> fairseq data-bin in one streaming pass: GPT-2 BPE (or SentencePiece) + binarization.

Reads RAW_DIR/data.{train,valid,test}.raw (as written by scripts/split_data.py; test is optional) and
writes DESTDIR/{train,valid,test}.bin/.idx and DESTDIR/dict.txt, byte-identical to the two-step
fairseq pipeline

  python fairseq/examples/roberta/multiprocessing_bpe_encoder.py --keep-empty ...   (-> .bpe text)
  fairseq-preprocess --only-source --srcdict dict.txt ...

without the intermediate .bpe text. Empty lines are kept by default (--keep-empty above, as in
RoBERTa's recipe): they mark document boundaries for --sample-break-mode complete_doc. GPT-2 tokens
missing from the dictionary become <unk> and are counted, as fairseq-preprocess does.

With a SentencePiece --tokenizer (scripts/train_spm.py's output, or xlmr.base) the reference is
SentencePieceProcessor.encode(line, out_type=str) joined by spaces (spm_encode --output_format=piece)
+ the same fairseq-preprocess. DESTDIR/tokenizer.json records the tokenizer (kind, sha256 of its files).
DESTDIR is replaced as a whole, never mixed with an earlier data-bin (see fairseq_ext/outputs.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fairseq_ext.cli import existing_file, run_cli, worker_count
from fairseq_ext.corpus.drivers import (
    binarize_files,
    check_has_text,
    first_lines,
    tokenizer_files,
    unknown_tokens,
)
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.tokenizer import add_tokenizer_argument, find_tokenizer_dir, read_dictionary, write_record
from fairseq_ext.tokenizer.dictionary import add_unknown_argument, check_unknown_share

SPLITS = ("train", "valid", "test")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True, help="directory with data.train.raw, data.valid.raw "
                        "and optionally data.test.raw")
    add_tokenizer_argument(parser, ", with dict.txt unless --srcdict")
    parser.add_argument("--srcdict", help="fairseq dictionary (default: dict.txt of --tokenizer)")
    parser.add_argument("--destdir", required=True, help="output data-bin directory, e.g. data-bin/wiki")
    parser.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                        help="worker processes (default: all %(default)s cores)")
    parser.add_argument("--no-keep-empty", dest="keep_empty", action="store_false",
                        help="drop empty lines, i.e. encode without --keep-empty (default: keep them as "
                             "empty sequences, the document boundaries of complete_doc)")
    add_unknown_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    tokenizer_dir = find_tokenizer_dir(args.tokenizer, need_dict=args.srcdict is None)
    srcdict = existing_file(args.srcdict or tokenizer_dir / "dict.txt", "dictionary")
    raw_dir = Path(args.raw_dir)
    if not raw_dir.is_dir():
        raise UserInputError(f"raw directory not found: {raw_dir}")
    raw_files = {split: raw_dir / f"data.{split}.raw" for split in SPLITS}
    raw_files = {split: path for split, path in raw_files.items() if path.is_file()}
    missing = [f"data.{split}.raw" for split in ("train", "valid") if split not in raw_files]
    if missing:
        raise UserInputError(f"{raw_dir}: missing {', '.join(missing)} (scripts/split_data.py writes them)")
    read_dictionary(srcdict)  # a malformed line or an empty file is reported before any work
    check_has_text([raw_files[split] for split in ("train", "valid")], "split_data.py writes documents there")
    hint = (f"is {srcdict} the dictionary of {tokenizer_dir}?" if args.srcdict else
            f"{tokenizer_dir} holds a dict.txt that does not belong to its tokenizer")
    sample = unknown_tokens(first_lines(raw_files["train"]), tokenizer_dir, srcdict)
    check_unknown_share(*sample, args.max_unk, f"{raw_files['train']} (first lines)", hint)
    output = OutputDirectory(args.destdir, "prepare_corpus",
                             inputs=[*raw_files.values(), srcdict, *tokenizer_files(tokenizer_dir)[1:]])
    with output.staged() as staging:
        summary = binarize_files(raw_files, staging, tokenizer_dir, srcdict, keep_empty=args.keep_empty,
                                 workers=args.workers, progress=not args.quiet)
        write_record(staging, tokenizer_dir)
        for split, stats in summary.items():  # the whole corpus, after the first lines: nothing written yet
            check_unknown_share(stats["unk"], stats["tokens"], args.max_unk, f"{raw_files[split]}", hint)
    for split, stats in summary.items():
        percent = 100 * stats["unk"] / max(1, stats["tokens"])
        dropped = f", {stats['filtered_empty']} empty lines dropped" if stats["filtered_empty"] else ""
        print(f"{split}: {stats['sequences']} sequences, {stats['tokens']} tokens, "
              f"{stats['unk']} ({percent:.3f}%) replaced by <unk>{dropped}", file=sys.stderr)
    datasets = ", ".join(f"{split}.bin/.idx" for split in summary)
    print(f"wrote {args.destdir}: dict.txt, {datasets}, tokenizer.json", file=sys.stderr)
    return 0


def cli() -> None:
    run_cli(main)
