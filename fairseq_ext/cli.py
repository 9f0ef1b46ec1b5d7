"""What every command-line tool of the project shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional, Sequence


class UserInputError(Exception):
    """A problem with the user's files or arguments: reported as one line, exit status 2."""


def existing_file(path: str | Path, what: str = "file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{what} not found: {path}")
    return path


def run_cli(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None):
    """Runs ``main(argv)``; a UserInputError becomes ``prog: error: message`` on stderr and exit 2."""
    prog = Path(sys.argv[0]).name
    try:
        status = main(argv)
    except UserInputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)


class _NoProgressBar:
    """What a disabled bar does (nothing), without importing tqdm (a tenth of a second and more)."""

    def __enter__(self) -> _NoProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass


def progress_bar(total: Optional[int], desc: str, enabled: bool = True, unit: str = "B"):
    """A tqdm bar on stderr; byte counts (the default unit) shown as KB/MB."""
    if not enabled:
        return _NoProgressBar()
    from tqdm import tqdm

    scale = unit == "B"
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
                file=sys.stderr, disable=not enabled, dynamic_ncols=True)
