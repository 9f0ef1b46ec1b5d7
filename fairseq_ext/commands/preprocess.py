"""Binarizes GPT-2 BPE text (bpe_encode.py output) with fairseq-preprocess into a data-bin directory:
BPE_DIR/data.{train,valid[,test]}.bpe -> DESTDIR/{train,valid,test}.bin/.idx + dict.txt.

The two-step fairseq route (scripts/preprocess.sh); scripts/prepare_corpus.py gives the same bytes from
raw text in one pass. fairseq-preprocess itself runs here, on checked inputs, into a staging directory
that replaces DESTDIR as a whole (see fairseq_ext/outputs.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fairseq_ext.cli import existing_file, run_cli, worker_count
from fairseq_ext.corpus.drivers import check_has_text, first_lines, unknown_symbols
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.tokenizer import DICTIONARY_FILE, ENV_VAR, read_dictionary
from fairseq_ext.tokenizer.dictionary import add_unknown_argument, check_unknown_share


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="preprocess.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bpe_dir", metavar="BPE_DIR", help="directory with data.train.bpe, data.valid.bpe "
                        "and optionally data.test.bpe")
    parser.add_argument("destdir", metavar="DESTDIR", help="output data-bin directory")
    parser.add_argument("dict", metavar="DICT", nargs="?",
                        help=f"fairseq dictionary (default: ${ENV_VAR}/{DICTIONARY_FILE})")
    parser.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                        help="fairseq-preprocess workers (default: all %(default)s cores)")
    add_unknown_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.dict is None and not os.environ.get(ENV_VAR):
        raise UserInputError(f"no dictionary: pass DICT or set {ENV_VAR}")
    dictionary = existing_file(args.dict or Path(os.environ[ENV_VAR]) / DICTIONARY_FILE, "dictionary")
    read_dictionary(dictionary)  # a malformed line is one line here, not fairseq's traceback
    bpe_dir = Path(args.bpe_dir)
    splits = {split: bpe_dir / f"data.{split}.bpe" for split in ("train", "valid", "test")}
    for split in ("train", "valid"):
        existing_file(splits[split], f"{split} split")
    check_has_text([splits["train"], splits["valid"]], "bpe_encode.py writes the encoded splits there")
    # BPE_DIR holds tokenized text (bpe_encode.py: GPT-2 ids; spm pieces): raw text is nearly all <unk>
    check_unknown_share(*unknown_symbols(first_lines(splits["train"]), dictionary), args.max_unk,
                        f"{splits['train']} (first lines)", "is it raw text? encode it with bpe_encode.py "
                        "first (GPT-2 BPE writes token ids), or give the dictionary of its tokenizer")
    prefixes = {f"--{split}pref": str(path) for split, path in splits.items() if path.is_file()}
    output = OutputDirectory(args.destdir, "preprocess", inputs=[dictionary, *splits.values()])

    from fairseq import options
    from fairseq_cli.preprocess import main as fairseq_preprocess

    with output.staged() as staging:
        argv = ["--only-source", "--srcdict", str(dictionary), "--destdir", str(staging),
                "--workers", str(args.workers), *(item for pair in prefixes.items() for item in pair)]
        fairseq_preprocess(options.get_preprocessing_parser().parse_args(argv))
    print(f"wrote {args.destdir}")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    run_cli(main)
