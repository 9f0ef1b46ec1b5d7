"""scripts/get_checkpoint.sh: a released RoBERTa / XLM-R checkpoint (fairseq's archive, or a local copy of it)
-> a checked model directory, ready for ``--restore DIR/model.pt``."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import MARKER, OutputDirectory
from fairseq_ext.releases import (
    RELEASES,
    REQUIRED_FILES,
    check_release,
    copy_release,
    download,
    file_sha256,
    unpack,
)

TOOL = "get_checkpoint"
RECORD = "release.json"  # in the model directory: where it came from, the archive's sha256


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="get_checkpoint.sh",
        description="Fetch one of fairseq's released checkpoints (its official archive), or take a local "
                    "copy of it, unpack it and check it: model.pt loads as a fairseq RoBERTa whose embedding "
                    "matches dict.txt. Ready for scripts/pretrain.sh --restore DEST/model.pt. A Hugging Face "
                    "model instead: convert/hf_to_fairseq.py.")
    parser.add_argument("name", choices=sorted(RELEASES), metavar="NAME",
                        help=f"the release: {', '.join(RELEASES)}")
    parser.add_argument("--dest", type=Path,
                        help="directory to hold model.pt, dict.txt and the release's other files "
                             "(default: ./NAME)")
    parser.add_argument("--copy-from", type=Path, metavar="PATH",
                        help="no download: the release archive (NAME.tar.gz) or an unpacked copy (a "
                             "directory with model.pt and dict.txt), e.g. on a cluster without network")
    parser.add_argument("--sha256", metavar="HEX",
                        help="the archive's expected sha256 (fairseq publishes none: use the one printed by "
                             "a first download, e.g. to check a copy made for an offline cluster)")
    parser.add_argument("--force", action="store_true", help="fetch again even if DEST already holds it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    release = RELEASES[args.name]
    dest = args.dest or Path(release.name)
    if args.sha256 and args.copy_from and args.copy_from.is_dir():
        raise UserInputError("--sha256 checks an archive; --copy-from names a directory")
    if not args.force and _already_there(dest):
        print(f"{dest} already holds {release.name} (pass --force to fetch it again)")
        return 0
    if args.copy_from is not None and not args.copy_from.exists():
        raise UserInputError(f"--copy-from {args.copy_from}: no such file or directory")
    output = OutputDirectory(dest, TOOL, inputs=[args.copy_from], force_hint="--force")
    with output.staged() as staging:
        source, sha256 = _fill(staging, release, args, dest)
        found, note = check_release(staging, release, str(args.copy_from or release.url))
        record = {"name": release.name, "source": source, "archive_sha256": sha256}
        (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if note:
        print(note)
    print(f"{dest}: {found}")
    if sha256:
        print(f"archive sha256 {sha256} (recorded in {dest / RECORD})")
    print(f"ready: --restore {dest / 'model.pt'}")
    return 0


def _already_there(dest: Path) -> bool:
    """DEST is an earlier complete output of this tool (rerunning the command costs nothing)."""
    return (dest / MARKER).is_file() and all((dest / name).is_file() for name in (*REQUIRED_FILES, RECORD))


def _fill(staging: Path, release, args, dest: Path) -> tuple[str, Optional[str]]:
    """The release's files into ``staging``; returns (where they came from, the archive's sha256). A
    download goes to a hidden file beside DEST, kept when it breaks off (the next run resumes it) and
    removed once used or found damaged."""
    if args.copy_from is not None and args.copy_from.is_dir():
        nested = args.copy_from / release.name  # the parent of an unpacked archive
        source = nested if not (args.copy_from / "model.pt").is_file() and nested.is_dir() else args.copy_from
        copy_release(source, staging)
        return str(source.resolve()), None
    unpacked = staging / ".unpacked"
    unpacked.mkdir()
    if args.copy_from is not None:
        archive, source = args.copy_from, str(args.copy_from.resolve())
    else:
        archive, source = dest.parent / f".{dest.name}.{release.name}.tar.gz.part", release.url
        kept = archive.stat().st_size if archive.is_file() else 0
        print(f"resuming {release.url} ({kept:,} bytes kept)" if kept else f"downloading {release.url}")
        download(release.url, archive, not args.quiet)
    try:
        sha256 = file_sha256(archive)
        if args.sha256 and sha256 != args.sha256.lower():
            raise UserInputError(f"{archive}: sha256 {sha256}, expected {args.sha256}: a different or "
                                 "damaged archive; nothing written")
        copy_release(unpack(archive, unpacked / "files"), staging)
    except UserInputError:
        if args.copy_from is None:  # a damaged download is not resumed: the next run starts afresh
            archive.unlink()
        raise
    if args.copy_from is None:
        archive.unlink()
    shutil.rmtree(unpacked)
    return source, sha256


def cli() -> None:
    run_cli(main, prog="get_checkpoint.sh")


if __name__ == "__main__":  # scripts/get_checkpoint.sh
    cli()
