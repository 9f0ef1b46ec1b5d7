"""What every command-line tool of the project shares: one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from fairseq_ext.errors import UserInputError  # also importable from here, for scripts written against it

PAUSE_ENV = "ROBERTA_SQUAD2_TEST_PAUSE"  # the test suite's fault injection: see pause_point


class Terminated(BaseException):
    """SIGTERM (a scheduler's kill, ``timeout``): raised like Ctrl-C so that ``finally`` clean-ups run."""


def existing_file(path: str | Path, what: str = "file", stream: bool = False) -> Path:
    """``path`` checked for what it is: a regular file; with ``stream`` also a FIFO or ``<(zcat ...)``
    (/dev/fd/N), which its caller reads once. A directory, a missing path or a stream where the caller
    reads twice or seeks is a one-line error saying which."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise UserInputError(f"{what} is a directory, not a file: {path}")
    if not path.exists():
        raise UserInputError(f"{what} not found: {path}")
    if not stream:
        raise UserInputError(f"{what} must be a regular file, not a stream (it is read more than once or "
                             f"seeked): {path}")
    return path


class Range:
    """The valid values of one numeric option or config field, declared where it is declared::

        parser.add_argument("--doc-stride", type=bounded_int(min=0))  # argparse: the option is named
        Range(int, min=1).check(cfg.dataset.batch_size, "dataset.batch_size")  # a config value

    ``min``/``max`` are inclusive unless ``open_min``/``open_max``; NaN and infinities are never valid
    (a NaN compares false with every bound and would pass any hand-written check). ``kind`` int accepts
    whole numbers only. One layer (this class) enforces every range before any work: no tool checks a
    range by hand, and the fuzz test of the command line (tests/test_cli_fuzz.py) reads the ranges from
    the parsers to generate values on both sides of each bound."""

    def __init__(self, kind: type = int, min: Optional[float] = None, max: Optional[float] = None,
                 open_min: bool = False, open_max: bool = False):
        self.kind, self.min, self.max, self.open_min, self.open_max = kind, min, max, open_min, open_max

    def describe(self) -> str:
        """'at least 1', 'between 0 and 1', 'greater than 0', ... (empty when unbounded)."""
        low = None if self.min is None else ("greater than" if self.open_min else "at least", self.min)
        high = None if self.max is None else ("less than" if self.open_max else "at most", self.max)
        if low and high and not self.open_min and not self.open_max:
            return f"between {self.min:g} and {self.max:g}"
        return " and ".join(f"{word} {bound:g}" for word, bound in filter(None, (low, high)))

    def parse(self, text) -> Union[int, float]:
        """``text`` (a string or a number) as ``kind``; a ValueError saying why not."""
        if self.kind is int:
            try:  # a float (read from JSON or YAML) only if it is whole: int() would cut 2.5 to 2
                whole = isinstance(text, float) and text.is_integer() or not isinstance(text, (float, bool))
                value = int(text) if whole else None
            except (TypeError, ValueError, OverflowError):
                value = None
            if value is None:
                raise ValueError(f"not a whole number: {text!r}")
        else:
            try:
                value = float(text)
            except (TypeError, ValueError):
                raise ValueError(f"{text!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{text!r} is not a finite number")
        if (self.min is not None and (value < self.min or (self.open_min and value == self.min))) or \
                (self.max is not None and (value > self.max or (self.open_max and value == self.max))):
            raise ValueError(f"must be {self.describe()}: {text}")
        return value

    def check(self, value, name: str) -> Union[int, float]:
        """``value`` parsed and checked; a UserInputError naming ``name`` (an option or config key)."""
        try:
            return self.parse(value)
        except ValueError as err:
            raise UserInputError(f"{name}: {err}") from None

    def argument_type(self) -> Callable[[str], Union[int, float]]:
        """The argparse ``type=`` of an option with this range (argparse names the option in its error:
        ``argument --doc-stride: must be at least 0: -5``); the range stays readable as ``.range``."""

        def parse(text: str):
            try:
                return self.parse(text)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None

        parse.range = self  # type: ignore[attr-defined]
        parse.__name__ = f"{self.kind.__name__} {self.describe()}".strip()
        return parse


def bounded_int(min: Optional[int] = None, max: Optional[int] = None) -> Callable[[str], int]:
    """argparse type: a whole number in [min, max] (either bound may be left out)."""
    return Range(int, min, max).argument_type()


def bounded_float(min: Optional[float] = None, max: Optional[float] = None, open_min: bool = False,
                  open_max: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in the range (bounds inclusive unless open_*)."""
    return Range(float, min, max, open_min, open_max).argument_type()


def ratio(open_max: bool = False) -> Callable[[str], float]:
    """argparse type: a share, 0 to 1 (below 1 with ``open_max``)."""
    return bounded_float(0.0, 1.0, open_max=open_max)


# Upper bounds where a value reaches a limit below it: C ints (SentencePiece, multiprocessing), seeds
# (numpy, torch and SentencePiece take 32-bit ones), process counts (each one is started).
C_INT_MAX = 2**31 - 1
MAX_WORKERS = 1024  # more processes or threads than any node has cores

positive_int = bounded_int(min=1)  # a batch size, a count of items
finite_float = bounded_float()  # a threshold: any finite number (see finite_number)
positive_float = bounded_float(0, open_min=True)  # a learning rate, a number of epochs
seed_int = bounded_int(0, 2**32 - 1)  # a random seed
worker_count = bounded_int(1, MAX_WORKERS)  # worker processes or threads


def finite_number(value, what: str) -> float:
    """``value`` (a string or a number, e.g. read from JSON) as a float; NaN, an infinity or a non-number
    is a UserInputError naming ``what``. The one rule for thresholds: a NaN compares false with
    everything, so a NaN "no answer" threshold would silently never answer "no answer"."""
    return Range(float).check(value, what)


def device_of(option: Optional[str]) -> str:
    """The torch device of ``--device`` (default: cuda when available, else cpu), checked before a model
    is loaded: a device this machine lacks is a one-line error, not torch's AssertionError later."""
    import torch

    if option is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(option)
    except RuntimeError as err:
        raise UserInputError(f"--device {option}: {str(err).splitlines()[0]}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"--device {option}: CUDA is not available on this machine (use --device "
                                 "cpu, or leave --device out)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserInputError(f"--device {option}: this machine has {torch.cuda.device_count()} CUDA "
                                 "device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UserInputError(f"--device {option}: MPS is not available on this machine")
    return option


def pause_point(name: str) -> None:
    """For the test suite: with ``$ROBERTA_SQUAD2_TEST_PAUSE`` set to ``NAME:FILE``, the tool creates FILE
    on reaching the point NAME and then waits there for a signal, so that a test interrupts it at that very
    point (no race with the tool's own pace). Points: ``staged`` (everything written into an output's
    staging, not yet renamed into place: fairseq_ext.outputs), ``import torch`` (run_cli, as the import of
    torch starts). Unset (always, outside tests), it does nothing."""
    point, _, ready = os.environ.get(PAUSE_ENV, "").partition(":")
    if point != name or not ready:
        return
    Path(ready).touch()
    while True:
        time.sleep(3600)


class _PauseOnImport:
    """A meta path finder that stops at pause_point("import MODULE") when MODULE's import starts."""

    def __init__(self, module: str):
        self.module = module

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.module:
            sys.meta_path.remove(self)
            pause_point(f"import {fullname}")
        return None


def _terminate(signum, frame):
    raise Terminated()


def run_cli(main: Union[str, Callable[[Optional[Sequence[str]]], Optional[int]]],
            argv: Optional[Sequence[str]] = None, prog: Optional[str] = None):
    """Runs ``main(argv)``: a function, or ``"package.module:function"`` imported here, so that Ctrl-C
    during a slow import (torch, fairseq) is handled too. A UserInputError becomes ``prog: error:
    message`` on stderr and exit 2, as does an OSError (a file that cannot be read or written); Ctrl-C
    exits 130 and SIGTERM 143, after the clean-ups of the interrupted code. ``prog``: the name in those
    lines (default: the name of the command that was run)."""
    prog = prog or Path(sys.argv[0]).name
    signal.signal(signal.SIGTERM, _terminate)
    point = os.environ.get(PAUSE_ENV, "").partition(":")[0]
    if point.startswith("import "):
        sys.meta_path.insert(0, _PauseOnImport(point.removeprefix("import ")))
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
