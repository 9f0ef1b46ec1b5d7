"""Writing a converted model directory all at once: into a temporary sibling that replaces the output
only when everything (verification included) succeeded, so a failure leaves nothing behind."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from fairseq_ext.cli import UserInputError


def check_output_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not force:
        raise UserInputError(f"{out_dir} exists: pass --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"{out_dir} exists and is not a directory")


@contextlib.contextmanager
def staged_directory(out_dir: Path) -> Iterator[Path]:
    """A new empty directory next to ``out_dir``; when the block succeeds it becomes ``out_dir`` (replacing
    a previous one), otherwise it is removed."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield staging
        _replace_directory(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _replace_directory(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    previous = out_dir.with_name(f".{out_dir.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    out_dir.rename(previous)
    staging.rename(out_dir)
    shutil.rmtree(previous)
