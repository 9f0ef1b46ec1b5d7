"""Split raw text into train/valid/test at document level: OUTDIR/data.{train,valid,test}.raw.

A document is a run of non-blank lines; blank (or whitespace-only) lines separate documents, as in
fairseq's complete_doc layout, and so does the end of each input file. Every document lands in exactly
one split with its lines unchanged (line ends written as \\n), documents separated by one blank line.
The assignment is uniformly random with exact counts, fixed by --seed. Two streaming passes over the
inputs (count, then write): memory stays bounded whatever their size. data.test.raw is written only
when test documents are asked for. OUTDIR is replaced as a whole (see fairseq_ext/outputs.py): it must be
new, empty or an earlier output of this command, outside the input directories.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from pathlib import Path

from fairseq_ext.cli import bounded_int, progress_bar, ratio, run_cli, seed_int
from fairseq_ext.corpus.reading import expand_inputs, is_stream
from fairseq_ext.corpus.split import assign_splits, iter_documents
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory

ERRORS_HINT = " (fix the file, or pass --errors replace to write U+FFFD instead)"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="text files, directories (all files below, sorted) or glob patterns")
    parser.add_argument("--outdir", required=True, help="where data.{train,valid,test}.raw go")
    parser.add_argument("--valid-ratio", type=ratio(open_max=True),
                        help="fraction of documents for valid (default 0.01; "
                        "at least 1 document when > 0)")
    parser.add_argument("--test-ratio", type=ratio(open_max=True),
                        help="fraction of documents for test (default 0.01)")
    parser.add_argument("--valid-docs", type=bounded_int(min=0),
                        help="exact number of valid documents (instead of ratios)")
    parser.add_argument("--test-docs", type=bounded_int(min=0),
                        help="exact number of test documents (instead of ratios)")
    parser.add_argument("--seed", type=seed_int, default=1,
                        help="random seed of the assignment (default %(default)s)")
    parser.add_argument("--errors", choices=["strict", "replace"], default="strict",
                        help="invalid UTF-8: stop with an error naming file and line (strict, default) or "
                             "replace it by U+FFFD and count it")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def check_split_options(args: argparse.Namespace) -> None:
    """What the options alone decide (each option's range is its parser's), before any input is read."""
    by_count = args.valid_docs is not None or args.test_docs is not None
    if by_count and (args.valid_ratio is not None or args.test_ratio is not None):
        raise UserInputError("give either --valid-ratio/--test-ratio or --valid-docs/--test-docs, not both")
    valid_ratio, test_ratio = ratios(args)
    if not by_count and valid_ratio + test_ratio >= 1:
        raise UserInputError(f"--valid-ratio {valid_ratio} and --test-ratio {test_ratio} leave no documents "
                             "for train: their sum must be below 1")


def ratios(args: argparse.Namespace) -> tuple[float, float]:
    """--valid-ratio and --test-ratio (default 0.01 each)."""
    return (0.01 if args.valid_ratio is None else args.valid_ratio,
            0.01 if args.test_ratio is None else args.test_ratio)


def split_counts(total: int, args: argparse.Namespace) -> tuple[int, int]:
    """(valid documents, test documents) asked for, checked against the ``total`` found."""
    if args.valid_docs is not None or args.test_docs is not None:
        valid, test = args.valid_docs or 0, args.test_docs or 0
    else:
        valid_ratio, test_ratio = ratios(args)
        valid = max(1, round(total * valid_ratio)) if valid_ratio > 0 else 0
        test = max(1, round(total * test_ratio)) if test_ratio > 0 else 0
    if valid + test >= total:
        raise UserInputError(f"only {total} documents found: cannot take {valid} valid and {test} test "
                             "documents and keep at least one for train")
    return valid, test


def spool_streams(files: list[Path], directory: Path) -> list[Path]:
    """``files`` with each stream (FIFO, /dev/fd/N) replaced by a copy in ``directory``: the split reads
    its inputs twice, a stream can be read once."""
    spooled = []
    for index, path in enumerate(files):
        if not is_stream(path):
            spooled.append(path)
            continue
        copy = directory / f".input-{index}"
        with open(path, "rb") as source, open(copy, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        spooled.append(copy)
    return spooled


def main(argv=None) -> int:
    args = parse_args(argv)
    check_split_options(args)
    inputs = expand_inputs(args.inputs)
    files = inputs.files
    if inputs.repeated:
        print(inputs.describe_repeated(), file=sys.stderr)
    # a directory read recursively may not hold the output: a second run would read its own splits
    input_dirs = [path for path in args.inputs if Path(path).is_dir()]
    output = OutputDirectory(args.outdir, "split_data", inputs=[*input_dirs, *files])
    with output.staged() as staging, contextlib.ExitStack() as files_open:
        readable = spool_streams(files, staging)
        shown = dict(zip(readable, files))  # error messages name the inputs as given
        total_bytes = sum(path.stat().st_size for path in readable)
        counts: dict = {}
        with progress_bar(total_bytes, "count documents", not args.quiet) as bar:
            total = sum(1 for _ in iter_documents(readable, args.errors, ERRORS_HINT, counts, bar.update,
                                                  names=shown))
        if total == 0:
            raise UserInputError(f"no documents in {', '.join(map(str, files))}: the input is empty or blank")
        valid, test = split_counts(total, args)
        names = ["train", "valid"] + (["test"] if test else [])
        written = {name: {"documents": 0, "lines": 0} for name in names}
        outputs = {name: files_open.enter_context(open(staging / f"data.{name}.raw", "wb")) for name in names}
        with progress_bar(total_bytes, "split", not args.quiet) as bar:
            documents = iter_documents(readable, args.errors, ERRORS_HINT, None, bar.update, names=shown)
            for split, document in zip(assign_splits(total, valid, test, args.seed), documents):
                stats = written[split]
                separator = "\n" if stats["documents"] else ""
                outputs[split].write((separator + "\n".join(document) + "\n").encode("utf-8"))
                stats["documents"] += 1
                stats["lines"] += len(document)
        for path in readable:
            if path not in files:
                path.unlink()
    for name in names:
        print(f"{name}: {written[name]['documents']} documents, {written[name]['lines']} lines -> "
              f"{Path(args.outdir) / f'data.{name}.raw'}", file=sys.stderr)
    if counts.get("replaced"):
        print(f"replaced {counts['replaced']} invalid UTF-8 sequences by U+FFFD", file=sys.stderr)
    return 0


def cli() -> None:
    run_cli(main)
