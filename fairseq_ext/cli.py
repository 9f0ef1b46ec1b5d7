"""What every command-line tool of the project shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence, Union


class UserInputError(Exception):
    """A problem with the user's files or arguments: reported as one line, exit status 2."""


class Terminated(BaseException):
    """SIGTERM (a scheduler's kill, ``timeout``): raised like Ctrl-C so that ``finally`` clean-ups run."""


def existing_file(path: str | Path, what: str = "file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{what} not found: {path}")
    return path


def _terminate(signum, frame):
    raise Terminated()


def run_cli(main: Union[str, Callable[[Optional[Sequence[str]]], Optional[int]]],
            argv: Optional[Sequence[str]] = None):
    """Runs ``main(argv)``: a function, or ``"package.module:function"`` imported here, so that Ctrl-C
    during a slow import (torch, fairseq) is handled too. A UserInputError becomes ``prog: error:
    message`` on stderr and exit 2, as does an OSError (a file that cannot be read or written); Ctrl-C
    exits 130 and SIGTERM 143, after the clean-ups of the interrupted code."""
    prog = Path(sys.argv[0]).name
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if isinstance(main, str):
            module, function = main.split(":")
            main = getattr(importlib.import_module(module), function)
        status = main(argv)
        try:  # a full disk or closed pipe on stdout is reported here, not at exit
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise UserInputError(f"cannot write standard output: {err.strerror}") from None
    except UserInputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        _exit(2)
    except BrokenPipeError:  # `tool | head`: the reader has gone, nothing to report
        _exit(141)
    except OSError as err:  # e.g. stdout on a full disk (a failed write names no file)
        where = f"{err.filename}: " if err.filename is not None else ""
        print(f"{prog}: error: {where}{err.strerror or err}", file=sys.stderr)
        _exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        _exit(130)
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        _exit(143)
    sys.exit(status or 0)


def _exit(status: int):
    """Exits without Python's own second report of stdout's failure at shutdown."""
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(status)


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
