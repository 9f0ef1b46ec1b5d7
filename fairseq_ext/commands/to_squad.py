"""Converts extractive QA data to SQuAD's layout, which every other tool reads:

    scripts/to_squad.py --format cmrc cmrc2018_dev.json dev-squad.json
    scripts/to_squad.py --format hw7 hw7_test.json test-squad.json    # no answers: predicted, not scored

Formats: squad (SQuAD v1.1/v2.0, DRCD, CMRC 2018's squad-style files: checked, written back), cmrc (CMRC
2018's original layout: answers as strings, located at their first occurrence in the context), hw7
({"questions": [...], "paragraphs": [...]}, answer_end inclusive). CMRC answers not found in their context
are kept with answer_start -1 and counted: evaluation scores them by their text, as the official script
does, and a training file skips their questions (prepare_squad2.py says how many). A file without answers
(a test set) becomes SQuAD without "answers" fields: predict_squad2.py answers it (--csv writes ID,Answer).
"""

from __future__ import annotations

import argparse
import json
import sys

from fairseq_ext.cli import run_cli
from fairseq_ext.outputs import OutputFiles
from fairseq_ext.squad.layouts import FORMATS, convert, read_json


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", required=True, choices=FORMATS, help="layout of IN")
    parser.add_argument("input", metavar="IN", help="the data file to convert")
    parser.add_argument("output", metavar="OUT", help="the SQuAD JSON file to write")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    output = OutputFiles([args.output], inputs=[args.input])
    conversion = convert(read_json(args.input), args.format, source=args.input)
    with output.open("w", encoding="utf-8") as (f,):
        json.dump(conversion.squad, f, ensure_ascii=False)
    print(f"{args.input} ({args.format}): {conversion.summary()}", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cli() -> None:
    run_cli(main)
