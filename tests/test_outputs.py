"""fairseq_ext.outputs: the one way every tool writes its results (checked first, staged, renamed into
place, never a mix of two runs, nothing foreign deleted, no staging left behind)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import MARKER, OutputDirectory, OutputFiles, check_not_input, json_text
from tests.conftest import REPO

TOOL = "tool.py"


def write_output(path, files: dict, tool=TOOL, **kwargs):
    with OutputDirectory(path, tool, **kwargs).staged() as staging:
        for name, text in files.items():
            (staging / name).write_text(text)


def listing(path) -> list[str]:
    return sorted(os.listdir(path))


# --- inputs and outputs ------------------------------------------------------------------------------

def test_output_that_is_an_input_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    corpus = data / "corpus.txt"
    corpus.write_text("x")
    (tmp_path / "link.txt").symlink_to(corpus)
    os.link(corpus, tmp_path / "hard.txt")
    for output, message in [(corpus, "is also an input"), (tmp_path / "link.txt", "is also an input"),
                            (tmp_path / "hard.txt", "is also an input"),
                            (data / "out", "is inside the input directory"),
                            (tmp_path, "contains the input")]:
        with pytest.raises(UserInputError, match=message):
            check_not_input(output, [data if "inside" in message else corpus])
    check_not_input(tmp_path / "elsewhere", [corpus, None, "-"])


# --- directories -------------------------------------------------------------------------------------

def test_directory_is_replaced_as_a_whole(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"a.txt": "old", "b.txt": "old"})
    assert listing(out) == [MARKER, "a.txt", "b.txt"]
    write_output(out, {"a.txt": "new"})
    assert listing(out) == [MARKER, "a.txt"]  # no stale b.txt next to the new result
    assert (out / "a.txt").read_text() == "new"
    assert listing(tmp_path) == ["out"]  # no staging or previous copy left


def test_failure_keeps_the_previous_result_and_removes_staging(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"a.txt": "old"})
    for failure in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(failure)):
            with OutputDirectory(out, TOOL).staged() as staging:
                (staging / "a.txt").write_text("half")
                raise failure
        assert (out / "a.txt").read_text() == "old"
        assert listing(tmp_path) == ["out"]


def test_created_parents_are_removed_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with OutputDirectory(tmp_path / "a" / "b" / "out", TOOL).staged():
            raise RuntimeError
    assert listing(tmp_path) == []


def test_only_own_earlier_output_or_an_empty_directory_is_replaced(tmp_path):
    foreign = tmp_path / "checkpoints"
    foreign.mkdir()
    (foreign / "checkpoint_last.pt").write_text("precious")
    with pytest.raises(UserInputError, match="exists and was not written by tool.py .it holds "
                                             "checkpoint_last.pt.: choose a new or empty directory"):
        OutputDirectory(foreign, TOOL)

    other = tmp_path / "other"
    write_output(other, {"x": "1"}, tool="other.py")
    with pytest.raises(UserInputError, match="holds the output of other.py, not tool.py"):
        OutputDirectory(other, TOOL)

    mine = tmp_path / "mine"
    write_output(mine, {"x": "1"})
    (mine / "notes.txt").write_text("the user's")
    with pytest.raises(UserInputError, match="holds notes.txt, which tool.py did not write"):
        OutputDirectory(mine, TOOL)

    empty = tmp_path / "empty"
    empty.mkdir()
    write_output(empty, {"x": "1"})
    assert listing(empty) == [MARKER, "x"]


def test_replace_false_needs_force(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"x": "1"}, replace=False)
    with pytest.raises(UserInputError, match="exists: pass --force to replace it"):
        OutputDirectory(out, TOOL, replace=False)


@pytest.mark.parametrize("case", ["file", "under a file", "unwritable", "root"])
def test_unusable_places_are_one_line_errors(case, tmp_path):
    (tmp_path / "file").write_text("x")
    path, message = {"file": (tmp_path / "file", "exists and is not a directory"),
                     "under a file": (tmp_path / "file" / "out", "is not a directory"),
                     "unwritable": ("/sys/roberta-squad2-test", "cannot write /sys/roberta-squad2-test: "),
                     "root": ("/", "cannot replace a file system root")}[case]
    with pytest.raises(UserInputError, match=message):
        with OutputDirectory(path, TOOL).staged():
            pytest.fail("no staging expected")


def test_ordinary_permissions(tmp_path):
    out = tmp_path / "out"
    with OutputDirectory(out, TOOL).staged() as staging:
        (staging / "secret").write_text("x")
        os.chmod(staging / "secret", 0o600)  # as some writers do (tempfile, safetensors)
        os.chmod(staging, 0o700)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((out / "secret").stat().st_mode) == 0o666 & ~mask


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    with OutputDirectory(out, TOOL).staged() as staging:
        leftover = staging.with_name(staging.name.replace(f"-{os.getpid()}-", f"-{dead}-"))
        running = staging.with_name(staging.name.replace(f"-{os.getpid()}-", "-1-"))  # pid 1 is alive
    leftover.mkdir()
    write_output(out, {"x": "1"})
    assert listing(tmp_path) == ["out"]
    running.mkdir()  # another live process is writing out: this one refuses before any work
    with pytest.raises(UserInputError, match=r"out is being written by another process \(pid 1\)"):
        write_output(out, {"x": "2"})
    assert listing(tmp_path) == sorted(["out", running.name]) and (out / "x").read_text() == "1"


def test_sigterm_removes_staging_and_keeps_the_previous_result(tmp_path):
    """A tool killed by a scheduler (SIGTERM) in the middle of writing, through run_cli."""
    out = tmp_path / "out"
    write_output(out, {"a.txt": "old"})
    script = textwrap.dedent(f"""
        import sys, time
        from fairseq_ext.cli import run_cli
        from fairseq_ext.outputs import OutputDirectory
        def main(argv):
            with OutputDirectory({str(out)!r}, {TOOL!r}).staged() as staging:
                (staging / "a.txt").write_text("half")
                print("writing", flush=True)
                time.sleep(60)
        run_cli(main)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout.readline() == "writing\n"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143 and stderr.strip() == "-c: terminated"
    assert (out / "a.txt").read_text() == "old" and listing(tmp_path) == ["out"]


# --- files -------------------------------------------------------------------------------------------

def test_files_are_renamed_into_place_together(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    first.write_text("old")
    with pytest.raises(RuntimeError):
        with OutputFiles([first, second]).open("w") as (a, b):
            a.write("new")
            raise RuntimeError
    assert first.read_text() == "old" and listing(tmp_path) == ["a.txt"]
    with OutputFiles([first, second]).open("w") as (a, b):
        a.write("new")
        b.write("new")
    assert first.read_text() == second.read_text() == "new"
    assert listing(tmp_path) == ["a.txt", "sub"]


@pytest.mark.parametrize("case", ["directory", "twice", "input", "device full"])
def test_unusable_files_are_one_line_errors(case, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("x")
    paths, message = {"directory": ([tmp_path], "is a directory: give a file name"),
                      "twice": ([tmp_path / "a", tmp_path / "." / "a"], "is given twice"),
                      "input": ([corpus], "is also an input"),
                      "device full": (["/dev/full"], "cannot write /dev/full: No space left on device")}[case]
    with pytest.raises(UserInputError, match=message):
        with OutputFiles(paths, inputs=[corpus]).open("w") as streams:
            streams[0].write("x")
    assert corpus.read_text() == "x"


def test_json_text_refuses_nan():
    assert json_text({"a": 1.5}) == '{\n  "a": 1.5\n}\n'
    with pytest.raises(UserInputError, match="null_odds.json: Out of range float values are not JSON"):
        json_text({"a": float("nan")}, "null_odds.json")


@pytest.mark.parametrize("earlier", [False, True], ids=["new", "replacing an earlier output"])
def test_two_writers_of_one_directory_cannot_both_succeed(tmp_path, earlier):
    """Both pass the checks (OUT does not exist, or is an earlier output); the first to finish writes it,
    the second is refused at its commit (a no-replace rename, or an exchange that finds OUT changed) and
    its result is not swapped in: the first one's output stays."""
    out = tmp_path / "out"
    if earlier:
        write_output(out, {"a.txt": "old"})
    first, second = OutputDirectory(out, TOOL), OutputDirectory(out, TOOL)
    with first.staged() as staging:
        (staging / "a.txt").write_text("first")
    with pytest.raises(UserInputError, match="written by another process while this one ran"):
        with second.staged() as staging:
            (staging / "a.txt").write_text("second")
    assert (out / "a.txt").read_text() == "first" and listing(tmp_path) == ["out"]


def test_two_processes_writing_one_new_directory(tmp_path):
    """The race of issue 28 as two processes: exactly one says it wrote OUT, and OUT is its output."""
    out = tmp_path / "new"
    script = textwrap.dedent(f"""
        import sys, time
        from fairseq_ext.cli import run_cli
        from fairseq_ext.outputs import OutputDirectory
        def main(argv):
            output = OutputDirectory({str(out)!r}, {TOOL!r})
            time.sleep(1)  # both have passed the checks before either stages
            with output.staged() as staging:
                (staging / "who.txt").write_text(argv[0])
                time.sleep(1)
            print("wrote", argv[0])
        run_cli(main, sys.argv[1:], prog="tool.py")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for name in ("A", "B")]
    results = [(run.wait(timeout=60), *run.communicate()) for run in runs]
    succeeded = [out_text.split()[-1] for status, out_text, _ in results if status == 0]
    refused = [err for status, _, err in results if status == 2]
    assert len(succeeded) == 1 and len(refused) == 1, results
    assert "Traceback" not in refused[0] and len(refused[0].strip().splitlines()) == 1, refused
    assert (out / "who.txt").read_text() == succeeded[0] and listing(tmp_path) == ["new"]


@pytest.mark.parametrize("failure", ["OSError", "library"])
def test_a_full_disk_while_writing_is_one_line_and_keeps_the_earlier_output(tmp_path, failure):
    """Whatever writes into the staging (Python, or a library reporting the system's error in its own
    exception, as safetensors does), a full disk is one line and the earlier output is intact."""
    import errno

    out = tmp_path / "out"
    write_output(out, {"a.txt": "old"})

    class SafetensorLikeError(Exception):
        pass

    with pytest.raises(UserInputError, match=r"cannot write .*out: No space left on device \(the earlier"):
        with OutputDirectory(out, TOOL).staged() as staging:
            (staging / "a.txt").write_text("half")
            if failure == "OSError":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise SafetensorLikeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                      'message: "No space left on device" })')
    assert (out / "a.txt").read_text() == "old" and listing(tmp_path) == ["out"]


def test_an_error_that_is_no_write_failure_passes_through(tmp_path):
    with pytest.raises(KeyError):
        with OutputDirectory(tmp_path / "out", TOOL).staged():
            raise KeyError("a bug: its traceback is what a developer needs")
