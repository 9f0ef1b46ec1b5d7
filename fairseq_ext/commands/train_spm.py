"""Trains a SentencePiece model for a corpus, in the layout XLM-R's directory has:

    scripts/train_spm.py --inputs corpus/ 'more/*.txt' --out spm_zh --vocab-size 32000

writes OUT/sentencepiece.bpe.model and OUT/dict.txt (the fairseq dictionary of its pieces: XLM-R's
layout, fairseq index = SentencePiece id + 1, counts from the training sample). Every other tool takes
OUT as --tokenizer. Huge inputs are streamed: a uniform random sample of at most --max-sentences
non-blank lines (stripped) is trained on. An existing XLM-R directory (sentencepiece.bpe.model +
dict.txt) needs no training: pass it as --tokenizer as is.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fairseq_ext.cli import (
    C_INT_MAX,
    bounded_float,
    bounded_int,
    progress_bar,
    run_cli,
    seed_int,
    worker_count,
)
from fairseq_ext.corpus.reading import expand_inputs, input_bytes, read_line_blocks
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.tokenizer.spm import (
    COVERAGE_RANGE,
    MAX_SENTENCE_BYTES,
    MODEL_FILE,
    existing_model_dir,
    sample_lines,
    train_sentencepiece,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="raw text: files, directories (read recursively) or glob patterns")
    parser.add_argument("--out", required=True, help="output directory (the tokenizer directory)")
    parser.add_argument("--vocab-size", type=bounded_int(4, C_INT_MAX), required=True,
                        help="pieces in the model, specials included")
    parser.add_argument("--character-coverage", type=bounded_float(*COVERAGE_RANGE), default=0.9995,
                        help="share of characters the pieces must cover; rarer ones become <unk> "
                             "(default %(default)s, sentencepiece's advice for CJK; 1.0 for small alphabets)")
    parser.add_argument("--model-type", choices=("unigram", "bpe"), default="unigram",
                        help="default %(default)s (XLM-R's)")
    parser.add_argument("--max-sentences", type=bounded_int(1, C_INT_MAX), default=2_000_000,
                        help="lines sampled from the inputs for training (default %(default)s)")
    parser.add_argument("--seed", type=seed_int, default=1,
                        help="sampling and training seed (default %(default)s)")
    parser.add_argument("--threads", type=worker_count, default=os.cpu_count() or 1,
                        help="training threads (default: all %(default)s cores)")
    parser.add_argument("--force", action="store_true", help="replace a model already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def input_lines(files, bar):
    for path in files:
        with open(path, "rb") as stream:
            for lines, nbytes in read_line_blocks(stream, str(path)):
                yield from lines
                bar.update(nbytes)


def main(argv=None) -> int:
    args = parse_args(argv)
    if existing_model_dir(args.out) and not args.force:
        raise UserInputError(f"{args.out} already holds {MODEL_FILE} and dict.txt: use it as --tokenizer, or "
                             "pass --force to train a new one")
    inputs = expand_inputs(args.inputs)
    files = inputs.files
    if inputs.repeated:
        print(inputs.describe_repeated(), file=sys.stderr)
    input_dirs = [path for path in args.inputs if Path(path).is_dir()]
    output = OutputDirectory(args.out, "train_spm", inputs=[*input_dirs, *files])
    with progress_bar(input_bytes([str(path) for path in files]), "sample", not args.quiet) as bar:
        sample, counts = sample_lines(input_lines(files, bar), args.max_sentences, args.seed)
    print(f"{len(files)} files, {counts['lines']} lines: {len(sample)} sampled of {counts['candidates']} "
          f"non-blank; {counts['blank']} blank; {counts['too_long']} longer than {MAX_SENTENCE_BYTES} bytes "
          "left out", file=sys.stderr)
    with output.staged() as staging:
        train_sentencepiece(sample, staging, args.vocab_size, args.character_coverage, args.model_type,
                            args.seed, args.threads, log=lambda line: print(line, file=sys.stderr))
    print(f"wrote {Path(args.out) / MODEL_FILE}, {Path(args.out) / 'dict.txt'}", file=sys.stderr)
    return 0


def cli() -> None:
    run_cli(main)
