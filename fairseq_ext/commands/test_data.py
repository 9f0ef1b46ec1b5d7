"""The test data the tests read (../shared's layout: GPT-2 BPE files, SQuAD 2.0 part, CMRC 2018 trial,
KJV, wiki paragraphs), fetched from its official homes and verified (fairseq_ext.testdata).

  fetch [DEST]      fetch into DEST (default: the user cache); scripts/get_test_data.sh runs this
  resolve           print the directory `make test` uses: $SHARED_DIR, else ../shared beside the
                    repository, else the user cache, fetched first when incomplete; it says which on stderr

ROBERTA_TEST_DATA_MIRROR=BASE fetches each https://HOST/PATH from BASE/HOST/PATH instead. Standard library
only: it runs before `make setup` has installed anything.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext import testdata
from fairseq_ext.cli import UserInputError, run_cli


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="fetch and verify the test data into DEST")
    fetch.add_argument("dest", nargs="?", type=Path, default=testdata.default_cache_dir(),
                       help="where to put it (default: %(default)s)")
    resolve = commands.add_parser("resolve", help="print the test data directory `make test` uses")
    resolve.add_argument("--repo", type=Path, default=Path("."), help="the repository root (default: .)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.command == "fetch":
        if testdata.is_complete(args.dest):
            print(f"test data already complete in {args.dest}", file=sys.stderr)
            return
        testdata.fetch_test_data(args.dest, os.environ.get(testdata.MIRROR_ENV))
        print(f"test data ready in {args.dest}", file=sys.stderr)
        return
    try:
        root, why = testdata.resolve_test_data(args.repo)
    except testdata.FetchError as err:
        raise UserInputError(f"no test data: {err}. Set SHARED_DIR to a copy of it, put it at ../shared, or "
                             "run `make test-data` once online") from None
    print(f"test data: {root} ({why})", file=sys.stderr)
    print(root)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
