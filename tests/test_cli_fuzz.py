"""A property-based fuzz test of the command line (issue 28). Every ``roberta-*`` command ([project.scripts]
of pyproject.toml) gets generated values for its numeric options (around the bounds its parser declares,
zero, negative, NaN, infinite, huge, not a number) and for every other option that takes a value (a path:
missing, under a missing directory, a directory, a FIFO with a writer, an empty or a junk file). The
options are read from the parsers themselves, so a new option is fuzzed without editing this file. The
promise (docs/outputs-and-errors.md):

- exit 0 with a correct result (checked where a command has a valid base below), or exit 2 with one error
  line and no traceback;
- a value outside an option's declared range is refused by the parser, naming the option;
- nothing that existed before changed.

The commands run in this process (``main(argv)``, what run_cli would print is derived from the exception:
no start-up cost); test_console_scripts_keep_the_promise runs each console script once as the user does.
``make test`` runs FUZZ_EXAMPLES (default 10) derandomized examples per command; ``make fuzz`` runs many
more, each run with new random ones (FUZZ_EXAMPLES=N, FUZZ_RANDOM=1).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import pytest
import tomllib
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fairseq_ext.cli import Range
from fairseq_ext.errors import UserInputError
from tests.conftest import REPO, shared_path

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"  # make fuzz: new examples each run
EXAMPLE_SECONDS = 30  # one example running longer is a hang (a FIFO read twice, a loop on a bad value)
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
# Always given, so that nothing trains or waits for standard input: the launcher only checks the run,
# predict_hf answers one question (without --question it reads questions from standard input).
FIXED = {"roberta-train": ["--check-only"],
         "roberta-predict-hf": ["--question", "Who?", "--context", "Someone."]}


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def parser_of(script: str) -> argparse.ArgumentParser:
    """The argument parser a command's main builds (the one with --help: finetune_hf reads --config with
    a first, partial parser), caught as it starts parsing."""
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, args=None, namespace=None):
        if self.add_help:
            raise _Parsed(self)
        return original(self, args, namespace)

    argparse.ArgumentParser.parse_known_args = capture
    try:
        main_of(script)(FIXED.get(script, []))
    except _Parsed as parsed:
        return parsed.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise AssertionError(f"{script} did not parse its arguments")


def main_of(script: str) -> Callable:
    return importlib.import_module(SCRIPTS[script].split(":")[0]).main


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]


def value_range(action: argparse.Action) -> Optional[Range]:
    return getattr(action.type, "range", None)


def takes_path(action: argparse.Action) -> bool:
    """Every option with a free value (not a flag, not a choice, not a number) is fuzzed with paths: a new
    path option is covered by default, and a text option must survive a path as well."""
    return action.nargs != 0 and not action.choices and value_range(action) is None


def flag(action: argparse.Action) -> Optional[str]:
    return max(action.option_strings, key=len) if action.option_strings else None


def count_of(action: argparse.Action) -> int:
    return action.nargs if isinstance(action.nargs, int) else 1


# --- the layer: every numeric option declares its range ------------------------------------------------

@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_numeric_option_declares_its_range(script):
    """A numeric option with a plain ``type=int``/``float`` (or a numeric default and no type) escapes the
    range layer: give it a range with fairseq_ext.cli.bounded_int/bounded_float/ratio where it is declared."""
    undeclared = []
    for action in options(parser_of(script)):
        numeric_default = isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
        if action.type in (int, float) or (numeric_default and action.type is None and action.nargs != 0):
            undeclared.append(flag(action) or action.dest)
    assert not undeclared, f"{script}: numeric options without a declared range: {undeclared}"


def outside_values(valid: Range) -> list[str]:
    """The values just outside each bound of ``valid`` (the bound itself where it is open)."""
    values = []
    for bound, side, is_open in ((valid.min, -1, valid.open_min), (valid.max, 1, valid.open_max)):
        if bound is not None:
            if valid.kind is int:
                values.append(str(int(bound) + side))
            else:
                values.append(repr(bound) if is_open else repr(bound + side * 1e-6 * max(1.0, abs(bound))))
    return values


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_bound_is_enforced(script, capsys):
    """Each bound of each numeric option: the value just outside it is refused by the parser, naming the
    option, before any work (the command runs with missing inputs: it must stop at its arguments)."""
    parser = parser_of(script)
    with tempfile.TemporaryDirectory() as scratch:
        given = base_arguments(script, parser, Place(Path(scratch)), valid=False)
        for action in options(parser):
            for text in outside_values(value_range(action)) if value_range(action) else []:
                argv = argv_of(script, parser, {**given, action.dest: [text] * count_of(action)})
                with pytest.raises(SystemExit) as stopped:
                    main_of(script)(argv)
                error = capsys.readouterr().err.strip().splitlines()[-1]
                assert stopped.value.code == 2 and f"argument {flag(action)}: " in error, (argv, error)


# --- the scratch place of one example -------------------------------------------------------------------

PATH_KINDS = ("missing", "missing-parent", "directory", "fifo", "empty", "junk")
STREAM = b"a line from a stream\n\nanother document\n"


class Place:
    """One example's scratch directory (also the working directory, so that a default output lands here):
    files of the user's that no command may change, and the paths generated for options."""

    def __init__(self, root: Path):
        self.root = root
        (root / "dir").mkdir()
        (root / "dir" / "kept.txt").write_text("a file of the user's\n")
        (root / "junk.txt").write_text("not what any command expects\n{[\n")
        (root / "empty.txt").write_text("")
        self.streams: list[Stream] = []

    def path(self, kind: str, name: str) -> str:
        if kind == "missing":
            return str(self.root / f"missing-{name}")
        if kind == "missing-parent":
            return str(self.root / "nowhere" / f"deeper-{name}")
        if kind == "directory":
            return str(self.root / "dir")
        if kind in ("empty", "junk"):
            return str(self.root / f"{kind}.txt")
        self.streams.append(Stream(self.root / f"fifo-{name}-{len(self.streams)}"))
        return str(self.streams[-1].path)

    def release(self) -> None:
        for stream in self.streams:
            stream.close()

    def snapshot(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.root)): p.read_bytes() for p in self.root.rglob("*") if p.is_file()}


class Stream:
    """A FIFO with the other end attached, as ``<(zcat corpus.gz)`` or ``>(gzip > out.gz)``: whichever
    way the command opens it (seen in /proc/self/fdinfo: the command runs in this process), a thread
    writes STREAM to it and closes (then the command reads to its end), or reads what the command writes.
    Opened a second time, it has no other end: a command that reads its input twice hangs, as it would
    on a real stream."""

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self.own = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never blocks; the command's open neither
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _command_fd(self) -> Optional[tuple[int, bool]]:
        """(fd, opened for writing) of the command's descriptor of this FIFO, if it has one."""
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if int(fd) != self.own and os.readlink(f"/proc/self/fd/{fd}") == str(self.path):
                    flags = int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
                    return int(fd), flags & os.O_ACCMODE != os.O_RDONLY
        return None

    def _serve(self) -> None:
        found = None
        while found is None and not self.done.wait(0.01):
            found = self._command_fd()
        if found is not None and not found[1]:  # the command reads: feed it, then its end of file
            os.write(self.own, STREAM)
        else:  # the command writes (or never opened it): drain until it has closed its end
            while not self.done.wait(0.01) and found is not None and self._command_fd() is not None:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.own, 1 << 16)
        os.close(self.own)

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=10)


# --- valid bases: real inputs, so that in-range values run the command and its result is checked --------
# Commands whose work grows with their numbers (training, generation, models) get missing inputs instead:
# the fuzz checks their parsers and their input checks; their results are tested in their own files.

def _wiki_lines() -> list[str]:
    return shared_path("data", "wiki", "wiki-paragraphs.txt").read_text(encoding="utf-8").splitlines()[:60]


def _documents(text: str) -> Counter:
    return Counter(block.strip() for block in re.split(r"\n\s*\n", text) if block.strip())


def _small_squad(place: Place) -> tuple[Path, dict]:
    """Two paragraphs of real SQuAD v2 dev data, and predictions that are their gold answers."""
    data = json.loads(shared_path("data", "squad2", "squad2-dev-part.json").read_text(encoding="utf-8"))
    article = dict(data["data"][0], paragraphs=data["data"][0]["paragraphs"][:2])
    path = place.root / "squad.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [article]}), encoding="utf-8")
    gold = {qa["id"]: (qa["answers"][0]["text"] if qa["answers"] else "")
            for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    return path, gold


def _split_base(place: Place) -> dict[str, list[str]]:
    (place.root / "corpus.txt").write_text("\n".join(_wiki_lines()) + "\n", encoding="utf-8")
    return {"inputs": [str(place.root / "corpus.txt")], "outdir": [str(place.root / "split")],
            "quiet": []}


def _split_result(place: Place, argv: list[str], stdout: str) -> None:
    written = sum((_documents(path.read_text(encoding="utf-8"))
                   for path in (place.root / "split").glob("data.*.raw")), Counter())
    assert written == _documents((place.root / "corpus.txt").read_text(encoding="utf-8")), \
        "the splits do not hold the input's documents, each once"


def _bpe_base(place: Place) -> dict[str, list[str]]:
    (place.root / "corpus.txt").write_text("\n".join(_wiki_lines()[:20]) + "\n", encoding="utf-8")
    return {"tokenizer": [str(shared_path("gpt2_bpe"))], "inputs": [str(place.root / "corpus.txt")],
            "outputs": [str(place.root / "corpus.bpe")], "keep_empty": [], "quiet": []}


def _bpe_result(place: Place, argv: list[str], stdout: str) -> None:
    encoded = (place.root / "corpus.bpe").read_text().splitlines()
    assert len(encoded) == 20 and all(re.fullmatch(r"(\d+( \d+)*)?", line) for line in encoded)


def _evaluate_base(place: Place) -> dict[str, list[str]]:
    data, gold = _small_squad(place)
    (place.root / "predictions.json").write_text(json.dumps(gold), encoding="utf-8")
    return {"data_file": [str(data)], "pred_file": [str(place.root / "predictions.json")]}


def _evaluate_result(place: Place, argv: list[str], stdout: str) -> None:
    scores = json.loads(stdout)
    assert 0 <= scores["exact"] <= 100 and 0 <= scores["f1"] <= 100, scores
    threshold = float(argv[argv.index("--na-prob-thresh") + 1]) if "--na-prob-thresh" in argv else 1.0
    if threshold >= 0:  # no --na-prob-file: every no-answer probability is 0, so the gold answers score 100
        assert scores["exact"] == scores["f1"] == 100, scores


def _prepare_squad2_base(place: Place) -> dict[str, list[str]]:
    data, _ = _small_squad(place)
    return {"train": [str(data)], "tokenizer": [str(shared_path("gpt2_bpe"))],
            "destdir": [str(place.root / "features")]}


def _prepare_squad2_result(place: Place, argv: list[str], stdout: str) -> None:
    assert any((place.root / "features").iterdir()), "nothing written"


def _spm_base(place: Place) -> dict[str, list[str]]:
    (place.root / "corpus.txt").write_text("\n".join(_wiki_lines()) + "\n", encoding="utf-8")
    return {"inputs": [str(place.root / "corpus.txt")], "out": [str(place.root / "spm")],
            "vocab_size": ["300"], "quiet": []}


def _spm_result(place: Place, argv: list[str], stdout: str) -> None:
    assert list((place.root / "spm").glob("*.model")), "no SentencePiece model written"


# Commands whose work grows without bound with a count (learnable_qa --train-questions 10**30 runs for
# ever, as asked): their output is always refused (a path under a file), so the fuzz checks their parser
# and their output check; the output option itself is not fuzzed. Their results: their own tests.
REFUSED_OUTPUT = {"roberta-learnable-qa": "out"}

BASES: dict[str, tuple[Callable, Callable]] = {
    "roberta-split": (_split_base, _split_result),
    "roberta-bpe-encode": (_bpe_base, _bpe_result),
    "roberta-evaluate-squad2": (_evaluate_base, _evaluate_result),
    "roberta-prepare-squad2": (_prepare_squad2_base, _prepare_squad2_result),
    "roberta-train-spm": (_spm_base, _spm_result),
}


def base_arguments(script: str, parser: argparse.ArgumentParser, place: Place,
                   valid: bool = True) -> dict[str, list[str]]:
    """dest -> values: the valid base of the command (unless not ``valid``), else every required argument
    given (a missing path under the scratch directory, a choice, the smallest valid number)."""
    given = BASES[script][0](place) if valid and script in BASES else {}
    if script in REFUSED_OUTPUT:
        given[REFUSED_OUTPUT[script]] = [str(place.root / "junk.txt" / "out")]
    for action in options(parser):
        if action.dest in given or not (action.required or not action.option_strings):
            continue
        if action.choices:
            given[action.dest] = [str(sorted(action.choices)[0])]
        elif value_range(action) is not None:
            low = value_range(action).min
            given[action.dest] = [str(int(low) if low is not None else 1)] * count_of(action)
        else:
            given[action.dest] = [place.path("missing", action.dest)] * count_of(action)
    return given


def argv_of(script: str, parser: argparse.ArgumentParser, given: dict[str, list[str]]) -> list[str]:
    argv = list(FIXED.get(script, []))
    for action in options(parser):
        if action.dest not in given:
            continue
        if action.option_strings:
            argv += [flag(action), *given[action.dest]]
        else:
            argv += given[action.dest]
    return argv


# --- generated values -----------------------------------------------------------------------------------

def numbers_for(valid: Range) -> st.SearchStrategy[str]:
    """Values around the range's bounds, special values and junk, as the command line gives them."""
    special = ["0", "-1", "1", "nan", "inf", "-inf", "1e309", "abc", "", "2.5", "-0", "1e3", "9" * 30]
    around = []
    for bound in (valid.min, valid.max):
        if bound is not None:
            if valid.kind is int:
                around += [str(int(bound) + step) for step in (-1, 0, 1)]
            else:
                around += [repr(bound + step) for step in (-1e-6, 0.0, 1e-6)]
    small = st.integers(-5, 50).map(str) if valid.kind is int else st.floats(-2, 2, allow_nan=False).map(repr)
    low = valid.min if valid.min is not None else -5
    high = valid.max if valid.max is not None else low + 50
    if valid.kind is int:  # inside the range, so that the command runs
        inside = st.integers(int(low), int(min(high, low + 50))).map(str)
    else:
        inside = st.floats(low, min(high, low + 2), exclude_min=valid.open_min, exclude_max=valid.open_max,
                           allow_nan=False).map(repr)
    return st.one_of(*([st.sampled_from(around)] if around else []), st.sampled_from(special), small, inside)


@st.composite
def examples(draw, script: str) -> dict[str, tuple[str, list[str]]]:
    """dest -> ("number", values) or ("path", kinds): one to three options of the command."""
    parser = parser_of(script)
    fuzzed = [action for action in options(parser) if (value_range(action) is not None or takes_path(action))
              and action.dest != REFUSED_OUTPUT.get(script)]
    chosen = draw(st.lists(st.sampled_from(fuzzed), min_size=1, max_size=3, unique_by=lambda a: a.dest))
    values = {}
    for action in chosen:
        if value_range(action) is not None:
            values[action.dest] = ("number", [draw(numbers_for(value_range(action)))
                                              for _ in range(count_of(action))])
        else:
            count = count_of(action) if action.nargs not in ("+", "*") else draw(st.integers(1, 2))
            values[action.dest] = ("path", [draw(st.sampled_from(PATH_KINDS)) for _ in range(count)])
    return values


# --- running one example --------------------------------------------------------------------------------

class _Hang(Exception):
    pass


def _too_long(signum, frame):
    raise _Hang()


def run_in_process(script: str, argv: list[str]) -> tuple[Optional[int], str, str, Optional[BaseException]]:
    """(exit status, stdout, stderr, exception) of main(argv) with standard input empty: a UserInputError
    or OSError is what run_cli prints as one line with exit 2; any other exception is a traceback (status
    None)."""
    stdout, stderr = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2))
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.TextIOWrapper(io.BytesIO(b"")), stdout, stderr
    previous = signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(EXAMPLE_SECONDS)
    try:
        status = main_of(script)(argv)
        return (status or 0), _text(stdout), _text(stderr), None
    except SystemExit as stopped:
        return stopped.code, _text(stdout), _text(stderr), None
    except (UserInputError, OSError) as err:
        return 2, _text(stdout), _text(stderr) + f"{script}: error: {err}\n", err
    except Exception as err:  # noqa: BLE001  (a traceback: the promise broken)
        return None, _text(stdout), _text(stderr), err
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        sys.stdin, sys.stdout, sys.stderr = saved


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", errors="replace")


def check_promise(script: str, values: dict[str, tuple[str, list[str]]]) -> int:
    """Runs one example and checks the promise; returns the exit status."""
    parser = parser_of(script)
    by_dest = {action.dest: action for action in options(parser)}
    with tempfile.TemporaryDirectory() as scratch:
        place = Place(Path(scratch))
        given = base_arguments(script, parser, place)
        for dest, (kind, drawn) in values.items():
            given[dest] = drawn if kind == "number" else \
                [place.path(path_kind, f"{dest}{i}") for i, path_kind in enumerate(drawn)]
        argv = argv_of(script, parser, given)
        before = place.snapshot()
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            status, stdout, stderr, error = run_in_process(script, argv)
        finally:
            os.chdir(cwd)
            place.release()
        shown = f"{script} {' '.join(argv)}"
        assert not isinstance(error, _Hang), f"{shown}: still running after {EXAMPLE_SECONDS} s"
        assert status is not None, f"{shown}: a traceback: {type(error).__name__}: {error}"
        assert status in (0, 2), f"{shown}: exit {status}\n{stderr[-2000:]}"
        if status == 2:
            errors = [line for line in stderr.splitlines() if ": error: " in line]
            assert len(errors) == 1 and errors == stderr.strip().splitlines()[-1:], \
                f"{shown}: {stderr[-2000:]}"
        refused = [f"argument {flag(by_dest[dest]) or dest}" for dest, (kind, drawn) in values.items()
                   if kind == "number" and any(_outside(value_range(by_dest[dest]), text) for text in drawn)]
        paths = [path for dest, (kind, _) in values.items() if kind == "path" for path in given[dest]]
        if refused:  # outside its declared range: refused by the parser, naming the option (or a path that
            # is read before the parser, as finetune_hf's --config)
            by_parser = error is None and any(name in stderr for name in refused)
            assert status == 2 and (by_parser or any(path in stderr for path in paths)), \
                f"{shown}: not refused by its parser: {stderr[-500:]}"
        if status == 0 and script in BASES and all(kind == "number" for kind, _ in values.values()):
            BASES[script][1](place, argv, stdout)
        # Nothing existing changed: on exit 0 a file named on the command line may have been written (an
        # output file is replaced, as by cp); the files inside a named directory never.
        named = {str(Path(value).relative_to(scratch)) for value in argv if value.startswith(scratch)}
        after = place.snapshot()
        changed = [name for name, content in before.items()
                   if after.get(name) != content and not (status == 0 and name in named)]
        assert not changed, f"{shown}: changed or removed existing files: {changed}"
        return status


def _outside(valid: Range, text: str) -> bool:
    try:
        valid.parse(text)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("script", sorted(BASES))
def test_valid_bases_succeed(script):
    """Each valid base runs (exit 0) and its result check passes: the fuzz's exit-0 checks can fail."""
    assert check_promise(script, {}) == 0


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_command_line_promise(script):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(examples(script))
    def promise(values):
        check_promise(script, values)

    promise()


# --- the same promise as the user meets it --------------------------------------------------------------

@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_scripts_keep_the_promise(script, tmp_path):
    """The installed command (run_cli, not this test's reading of exceptions): a NaN for its first numeric
    option (or, without one, a directory where its first path goes) is exit 2 with one error line, no
    traceback, and nothing written."""
    parser = parser_of(script)
    place = Place(tmp_path)
    given = base_arguments(script, parser, place)
    numeric = [action for action in options(parser) if value_range(action) is not None]
    if numeric:
        given[numeric[0].dest], named = ["nan"] * count_of(numeric[0]), f"argument {flag(numeric[0])}"
    else:
        first = next(action for action in options(parser) if takes_path(action))
        given[first.dest], named = [place.path("directory", first.dest)] * count_of(first), ""
    before = place.snapshot()
    result = subprocess.run([str(Path(sys.executable).parent / script), *argv_of(script, parser, given)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    assert errors == result.stderr.strip().splitlines()[-1:] and named in errors[0], result.stderr
    assert place.snapshot() == before
