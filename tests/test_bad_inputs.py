"""The bad-input and fault sweep (issue 12): every case a hostile but realistic user hit gives a one-line
error or the right result, nothing is lost, mixed or stale, and nothing hangs.

The commands run as the user runs them (a subprocess, with a timeout so that a hang fails the test) where
the behaviour is about the exit status, the one-line message, a hang or a signal; refusals of the
torch-heavy commands run in this process (``refuses``: the UserInputError that run_cli prints as one
line), which spares a start-up of torch, fairseq and transformers per case. A case is one function
registered under the name it is listed with, so that the sweep reads as the list of cases.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from fairseq_ext.cli import PAUSE_ENV
from fairseq_ext.outputs import MARKER
from tests.conftest import REPO
from tests.pretrain_fixtures import training_records
from tests.squad_fixtures import TINY_WINDOWS, VALID_ARTICLES, squad_articles

TIMEOUT = 300  # seconds: a hang fails the case
def case_registry() -> tuple[dict[str, Callable], Callable]:
    """(CASES, case): ``@case(name)`` registers a function as the case ``name`` of a sweep."""
    cases: dict[str, Callable] = {}

    def case(name: str):
        def register(function):
            cases[name] = function
            return function
        return register
    return cases, case


CASES, case = case_registry()


# --- running the commands ----------------------------------------------------------------------------

def command(tool: str, *args) -> list[str]:
    """scripts/TOOL or convert/TOOL (.py with this interpreter, .sh with bash)."""
    path = REPO / "scripts" / tool if (REPO / "scripts" / tool).exists() else REPO / "convert" / tool
    return (["bash"] if tool.endswith(".sh") else [sys.executable]) + [str(path), *map(str, args)]


def environment() -> dict:
    return {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run(tool: str, *args, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(command(tool, *args), capture_output=True, text=True, env=environment(),
                          timeout=timeout, cwd=REPO)


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str, status: int = 2) -> None:
    """Exit status ``status``, no traceback, and exactly one error line, the last, matching ``pattern``."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == status and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in lines if ": error: " in line]
    assert errors == lines[-1:], result.stderr[-3000:]
    assert re.search(pattern, errors[0]), errors[0]


def fails(tool: str, *args, pattern: str, status: int = 2) -> subprocess.CompletedProcess:
    result = run(tool, *args)
    assert_one_line_error(result, pattern, status)
    return result


def refuses(module: str, *args, pattern: str) -> None:
    """The command ``fairseq_ext.MODULE`` run in this process (no start-up cost: torch, fairseq and
    transformers are imported once) raises the UserInputError that run_cli prints as one line."""
    import importlib

    from fairseq_ext.errors import UserInputError

    with pytest.raises(UserInputError, match=pattern):
        importlib.import_module(f"fairseq_ext.{module}").main([str(arg) for arg in args])


def rejects(module: str, *args, pattern: str, capsys) -> None:
    """The command ``fairseq_ext.MODULE`` run in this process stops at its argument parsing (before any
    file is read or model loaded): exit 2 and ``prog: error: argument ...`` matching ``pattern``."""
    import importlib

    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(f"fairseq_ext.{module}").main([str(arg) for arg in args])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert stopped.value.code == 2 and re.search(pattern, error), error


def forbid(monkeypatch, module: str, name: str) -> None:
    """``module.name`` (a model loader) fails the test if it is called: a refusal must come before it."""
    import importlib

    def called(*args, **kwargs):
        raise AssertionError(f"{module}.{name} was called before the refusal")

    monkeypatch.setattr(importlib.import_module(module), name, called)


def in_process(module: str, *args, capsys) -> str:
    """Runs the command ``fairseq_ext.MODULE`` in this process (torch, fairseq and transformers already
    imported); its exit status must be 0. Returns what it printed on stdout."""
    import importlib

    capsys.readouterr()
    assert importlib.import_module(f"fairseq_ext.{module}").main([str(arg) for arg in args]) in (0, None)
    return capsys.readouterr().out


def succeeds(tool: str, *args) -> subprocess.CompletedProcess:
    result = run(tool, *args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` (hidden ones too) -> its bytes."""
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file()}


def interrupt_at(point: str, tool: str, args: list, sig: int, tmp_path: Path) -> subprocess.CompletedProcess:
    """Runs TOOL and sends ``sig`` once it has reached the pause point ``point`` (fairseq_ext.cli.pause_point:
    ``staged``, its outputs written into their staging but not in place; ``import torch``): the tool says
    so with a file and waits there, so the signal lands at that point whatever the machine's pace."""
    ready = tmp_path / "paused"
    process = subprocess.Popen(command(tool, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**environment(), PAUSE_ENV: f"{point}:{ready}"}, cwd=REPO,
                               preexec_fn=default_sigint)
    try:
        wait_for(lambda: ready.exists(), process, f"{tool} to reach {point}")
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
        ready.unlink(missing_ok=True)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def default_sigint() -> None:
    """In the child before it starts: SIGINT delivered as Ctrl-C delivers it, even when the test suite runs
    as a background job (a shell starts those with SIGINT ignored, which the tool would inherit and keep)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(condition: Callable[[], bool], process: Optional[subprocess.Popen], what: str,
             timeout: float = TIMEOUT) -> None:
    """Polls ``condition`` until it holds; fails if ``process`` ends first or after ``timeout`` (a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"waiting for {what}: the process ended ({process.returncode}): "
                        f"{process.stderr.read()[-3000:] if process.stderr else ''}")
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.01)


def assert_interrupted(result: subprocess.CompletedProcess, sig: int) -> None:
    word, status = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated", 143)}[sig]
    assert result.returncode == status and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].endswith(f": {word}")


def assert_no_staging(directory: Path) -> None:
    assert not [path.name for path in directory.iterdir() if ".partial-" in path.name]


# --- inputs ------------------------------------------------------------------------------------------

def truncated_encoder(gpt2_bpe_dir: Path, tmp_path: Path) -> Path:
    """An interrupted download of encoder.json."""
    path = tmp_path / "encoder.json"
    path.write_bytes((gpt2_bpe_dir / "encoder.json").read_bytes()[:100_000])
    return path


def bpe_dir_with(gpt2_bpe_dir: Path, tmp_path: Path, **replaced: bytes) -> Path:
    """A copy of the GPT-2 BPE directory with some files' contents replaced (name -> bytes)."""
    directory = tmp_path / "gpt2_bpe"
    directory.mkdir()
    for name in ("encoder.json", "vocab.bpe", "dict.txt"):
        content = replaced.get(name.replace(".", "_"))
        (directory / name).write_bytes(content if content is not None else (gpt2_bpe_dir / name).read_bytes())
    return directory


MALFORMED_DICT = b"50256 100\n13\n198 5\n"  # the second line has no count


def corpus_file(tmp_path: Path, documents: int = 12) -> Path:
    path = tmp_path / "corpus" / "docs.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(f"Document {i} line one.\nDocument {i} line two." for i in range(documents))
                    + "\n")
    return path


# --- hang ----------------------------------------------------------------------------------------------

@case("bpe_encode: missing --encoder-json, 2 workers: one line, no hang, the old output kept")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    text, out = corpus_file(tmp_path), tmp_path / "out.bpe"
    out.write_text("good output\n")
    fails("bpe_encode.py", "--encoder-json", tmp_path / "missing.json", "--vocab-bpe", bpe / "vocab.bpe",
          "--inputs", text, "--outputs", out, "--workers", 2, "--quiet",
          pattern="cannot read GPT-2 BPE files .*missing.json")
    assert out.read_text() == "good output\n"
    assert_no_staging(tmp_path)


@case("bpe_encode: truncated --encoder-json, 2 workers: one line, no hang, the old output kept")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    text, out = corpus_file(tmp_path), tmp_path / "out.bpe"
    out.write_text("good output\n")
    fails("bpe_encode.py", "--encoder-json", truncated_encoder(bpe, tmp_path), "--vocab-bpe",
          bpe / "vocab.bpe", "--inputs", text, "--outputs", out, "--workers", 2, "--quiet",
          pattern="cannot read GPT-2 BPE files .*encoder.json.*EOF while parsing")
    assert out.read_text() == "good output\n"
    assert_no_staging(tmp_path)


@case("prepare_corpus: truncated encoder.json, 2 workers: one line, nothing written")
def _(request, tmp_path):
    bpe = bpe_dir_with(request.getfixturevalue("gpt2_bpe_dir"), tmp_path,
                       encoder_json=truncated_encoder(request.getfixturevalue("gpt2_bpe_dir"),
                                                      tmp_path).read_bytes())
    destdir = tmp_path / "data-bin"
    fails("prepare_corpus.py", "--raw-dir", request.getfixturevalue("wiki_raw_dir"), "--gpt2-bpe", bpe,
          "--destdir", destdir, "--workers", 2, "--quiet", pattern="encoder.json")
    assert not destdir.exists()
    assert_no_staging(tmp_path)


# --- data loss ---------------------------------------------------------------------------------------

@case("bpe_encode: --outputs equal to --inputs: refused, the input intact")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    text = corpus_file(tmp_path)
    before = text.read_bytes()
    fails("bpe_encode.py", "--encoder-json", bpe / "encoder.json", "--vocab-bpe", bpe / "vocab.bpe",
          "--inputs", text, "--outputs", text, "--quiet", pattern="is also an input")
    assert text.read_bytes() == before


@case("split_data: interrupted over a previous split: the previous split intact, no staging left")
def _(request, tmp_path):
    text, outdir = corpus_file(tmp_path), tmp_path / "split"
    args = ["--inputs", text, "--outdir", outdir, "--valid-docs", 5, "--quiet"]
    succeeds("split_data.py", *args, "--seed", 1)
    before = snapshot(outdir)
    for sig in (signal.SIGINT, signal.SIGTERM):  # a new split is staged, then interrupted
        assert_interrupted(interrupt_at("staged", "split_data.py", [*args, "--seed", 2], sig, tmp_path), sig)
        assert snapshot(outdir) == before
        assert_no_staging(tmp_path)


@case("split_data: the same file named twice, through a link and by a glob: read once, and said so")
def _(request, tmp_path):
    text, outdir = corpus_file(tmp_path, documents=12), tmp_path / "split"
    (tmp_path / "link.txt").symlink_to(text)
    inputs = [text, text, tmp_path / "link.txt", tmp_path / "corpus" / "*"]
    result = succeeds("split_data.py", "--inputs", *inputs, "--outdir", outdir, "--valid-docs", 2,
                      "--test-docs", 2, "--quiet")
    assert "3 input files named more than once (the same path, a link or an overlapping pattern) were read " \
           "once" in result.stderr
    documents = [doc.strip() for name in ("train", "valid", "test")
                 for doc in (outdir / f"data.{name}.raw").read_text().split("\n\n")]
    assert sorted(documents) == sorted(doc.strip() for doc in text.read_text().split("\n\n"))  # no leakage


# --- mixed or stale outputs ----------------------------------------------------------------------------

@case("prepare_corpus: interrupted over an older data-bin: the older data-bin intact, no staging left")
def _(request, tmp_path):
    destdir, raw = tmp_path / "data-bin", request.getfixturevalue("wiki_raw_dir")
    args = ["--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"), "--destdir", destdir, "--workers", 1,
            "--quiet"]
    succeeds("prepare_corpus.py", "--raw-dir", raw, *args)
    before = snapshot(destdir)
    other = tmp_path / "other-raw"  # another data-bin (no test split) is staged, then interrupted
    other.mkdir()
    (other / "data.train.raw").write_bytes((raw / "data.valid.raw").read_bytes())
    (other / "data.valid.raw").write_bytes((raw / "data.valid.raw").read_bytes())
    sig = signal.SIGTERM
    args = ["--raw-dir", other, *args]
    assert_interrupted(interrupt_at("staged", "prepare_corpus.py", args, sig, tmp_path), sig)
    assert snapshot(destdir) == before
    assert_no_staging(tmp_path)


@case("prepare_corpus: a new raw dir without test split over an older data-bin: no stale test.bin/.idx")
def _(request, tmp_path):
    raw, destdir = request.getfixturevalue("wiki_raw_dir"), tmp_path / "data-bin"
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    succeeds("prepare_corpus.py", "--raw-dir", raw, "--gpt2-bpe", bpe, "--destdir", destdir, "--quiet")
    assert (destdir / "test.bin").is_file()
    no_test = tmp_path / "raw"
    no_test.mkdir()
    for split in ("train", "valid"):
        (no_test / f"data.{split}.raw").write_bytes((raw / f"data.{split}.raw").read_bytes())
    succeeds("prepare_corpus.py", "--raw-dir", no_test, "--gpt2-bpe", bpe, "--destdir", destdir, "--quiet")
    assert sorted(os.listdir(destdir)) == sorted([MARKER, "dict.txt", "tokenizer.json", "train.bin",
                                                  "train.idx", "valid.bin", "valid.idx"])


@case("split_data: re-run with --test-docs 0: no stale data.test.raw")
def _(request, tmp_path):
    text, outdir = corpus_file(tmp_path), tmp_path / "split"
    succeeds("split_data.py", "--inputs", text, "--outdir", outdir, "--valid-docs", 2, "--test-docs", 2,
             "--quiet")
    assert (outdir / "data.test.raw").is_file()
    succeeds("split_data.py", "--inputs", text, "--outdir", outdir, "--valid-docs", 2, "--test-docs", 0,
             "--quiet")
    assert sorted(os.listdir(outdir)) == [MARKER, "data.train.raw", "data.valid.raw"]


@case("split_data: --outdir inside an input directory: refused (a re-run would read its own splits)")
def _(request, tmp_path):
    text = corpus_file(tmp_path)
    fails("split_data.py", "--inputs", text.parent, "--outdir", text.parent / "split", "--valid-docs", 2,
          "--quiet", pattern="is inside the input directory")
    assert os.listdir(text.parent) == ["docs.txt"]


@case("prepare_squad2: re-run with --train only: no stale valid.* of the earlier run")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    train = squad_articles(("Normans",), tmp_path / "train.json")
    valid = squad_articles(VALID_ARTICLES, tmp_path / "valid.json")
    destdir = tmp_path / "squad-bin"
    succeeds("prepare_squad2.py", "--train", train, "--valid", valid, "--gpt2-bpe", bpe, "--destdir", destdir,
             *TINY_WINDOWS)
    assert (destdir / "valid.features.npz").is_file() and (destdir / "valid.json").is_file()
    succeeds("prepare_squad2.py", "--train", train, "--gpt2-bpe", bpe, "--destdir", destdir, *TINY_WINDOWS)
    assert not [name for name in os.listdir(destdir) if name.startswith("valid")]
    metadata = json.loads((destdir / "squad2_features.json").read_text())
    assert list(metadata["splits"]) == ["train"]


# --- silent wrong answers --------------------------------------------------------------------------------

def squad_and_predictions(tmp_path: Path, na_value: float) -> tuple[Path, Path, Path]:
    data = squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    articles = json.loads(data.read_text())["data"]
    qids = [qa["id"] for article in articles for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]]
    predictions, na_probs = tmp_path / "pred.json", tmp_path / "na.json"
    predictions.write_text(json.dumps({qid: "" for qid in qids}))
    na_probs.write_text(json.dumps({qid: (na_value if i == 3 else 0.5) for i, qid in enumerate(qids)}))
    return data, predictions, na_probs


@case("evaluate_squad2: NaN in --na-prob-file: refused, no --out-file written")
def _(request, tmp_path):
    data, predictions, na_probs = squad_and_predictions(tmp_path, float("nan"))
    fails("evaluate_squad2.py", data, predictions, "--na-prob-file", na_probs, "--out-file",
          tmp_path / "e.json", pattern=r"na.json: question \S+: nan is not a number")
    assert not (tmp_path / "e.json").exists()


@case("evaluate_squad2: infinity in --na-prob-file: refused")
def _(request, tmp_path):
    data, predictions, na_probs = squad_and_predictions(tmp_path, float("inf"))
    fails("evaluate_squad2.py", data, predictions, "--na-prob-file", na_probs,
          pattern=r"na.json: question \S+: inf is not a number")


@case("finetune_squad2.sh without --restore: refused unless --from-scratch")
def _(request, tmp_path):
    data = request.getfixturevalue("squad2_data_bin")
    args = ["--config", "squad2_tiny", "--config-dir", REPO / "configs" / "finetuning", "--data", data,
            "--save-dir", tmp_path / "run", "--check-only"]
    refuses("training.launch", *args,
            pattern="no checkpoint to fine-tune: pass --restore CKPT .* or --from-scratch")
    from fairseq_ext.training import launch

    assert launch.main([str(arg) for arg in args] + ["--from-scratch"]) == 0


# --- issue 21: training pre-flight and checkpoint saves ------------------------------------------------

def files_state(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``directory`` -> (size, mtime): what a refusal must leave as it was."""
    return {str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(directory.rglob("*")) if path.is_file()}


@case("pretrain.sh --restore with a same-size dict.txt in another order: refused (scrambled ids)")
def _(request, tmp_path):
    checkpoint, wiki = request.getfixturevalue("tiny_pretrained_checkpoint"), request.getfixturevalue(
        "wiki_data_bin")
    data = tmp_path / "data-bin"
    data.mkdir()
    for name in ("train.bin", "train.idx", "valid.bin", "valid.idx"):
        (data / name).symlink_to(wiki / name)
    lines = (wiki / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[5], lines[6] = lines[6], lines[5]
    (data / "dict.txt").write_text("".join(lines), encoding="utf-8")
    refuses("training.launch", "--config", "tiny", "--data", data, "--save-dir", tmp_path / "run",
            "--restore", checkpoint, "--check-only",
            pattern=rf"^the data's dictionary {data / 'dict.txt'} differs from {wiki / 'dict.txt'}, the "
                    r"dictionary the model was trained with, from line 6 on \(50264 vs 50264 symbols\): "
                    r"binarize the data with that one")


@case("pretrain.sh --restore a fine-tuned SQuAD checkpoint, or --save-dir its run: refused, nothing touched")
def _(request, tmp_path):
    squad_checkpoint = request.getfixturevalue("tiny_squad_checkpoint")
    wiki = request.getfixturevalue("wiki_data_bin")
    squad_run = squad_checkpoint.parent
    before = files_state(squad_run)
    refuses("training.launch", "--config", "tiny", "--data", wiki, "--save-dir", tmp_path / "run",
            "--restore", squad_checkpoint,
            pattern=rf"^checkpoint {squad_checkpoint} is fine-tuned \(task squad2, roberta_span_qa\w*\): "
                    "task masked_lm continues a pretrained masked-LM checkpoint$")
    refuses("training.launch", "--config", "tiny", "--data", wiki, "--save-dir", squad_run,
            "--restore", request.getfixturevalue("tiny_pretrained_checkpoint"),
            pattern=rf"^{squad_run} holds a run of task squad2 \(checkpoint_last.pt: roberta_span_qa\w*\), "
                    "not of task masked_lm: choose another --save-dir$")
    assert files_state(squad_run) == before and not (tmp_path / "run").exists()


@case("pretrain.sh --save-dir below a regular file, or /dev/full: refused before training")
def _(request, tmp_path):
    wiki = request.getfixturevalue("wiki_data_bin")
    (tmp_path / "a-file").write_text("x")
    for save_dir, culprit in ((tmp_path / "a-file" / "run", tmp_path / "a-file"),
                              (Path("/dev/full"), Path("/dev/full"))):
        refuses("training.launch", "--config", "tiny", "--data", wiki, "--save-dir", save_dir, "--check-only",
                pattern=rf"^cannot write checkpoints in {save_dir}: {culprit} is not a directory$")


@case("pretrain.sh --save-dir on a read-only filesystem: refused before training")
def _(request, tmp_path):
    """A read-only tmpfs mounted in a private user + mount namespace (no privileges needed, gone with it)."""
    wiki = request.getfixturevalue("wiki_data_bin")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    mount_then_run = 'mount -t tmpfs -o ro,size=1m tmpfs "$1" && shift && exec "$@"'
    pretrain = command("pretrain.sh", "--config", "tiny", "--data", wiki, "--save-dir", read_only / "run",
                       "--check-only")
    result = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", mount_then_run, "sh",
                             read_only, *pretrain],
                            capture_output=True, text=True, env=environment(), timeout=TIMEOUT, cwd=REPO)
    assert_one_line_error(result, rf"cannot write checkpoints in {read_only}/run: {read_only} is on a "
                                  "read-only filesystem$")
    assert not any(read_only.iterdir())


@case("pretrain.sh: disk full while saving a checkpoint: one line, no .tmp left, the last checkpoint intact")
def _(request, tmp_path):
    """The resumed run's save at update 21 writes its .tmp files into /dev/full (a real ENOSPC)."""
    checkpoint = request.getfixturevalue("tiny_pretrained_checkpoint")
    save_dir = tmp_path / "run"
    save_dir.mkdir()
    last = save_dir / "checkpoint_last.pt"
    last.write_bytes(checkpoint.read_bytes())
    for name in ("checkpoint_best.pt.tmp", "checkpoint_last.pt.tmp"):
        (save_dir / name).symlink_to("/dev/full")
    before = last.read_bytes()
    result = fails("pretrain.sh", "--config", "tiny", "--data", request.getfixturevalue("wiki_data_bin"),
                   "--save-dir", save_dir, "optimization.max_update=21",
                   pattern=rf"^pretrain.sh: error: cannot save the checkpoint of update 21 in "
                           rf"{save_dir}: No space left on device \(the checkpoints saved before are "
                           r"intact\)$")
    assert "Traceback" not in result.stdout
    assert sorted(p.name for p in save_dir.glob("checkpoint*")) == ["checkpoint_last.pt"]
    assert last.read_bytes() == before


@case("pretrain.sh --from-scratch --config roberta_base_continue: from scratch; a rerun resumes, no resets")
def _(request, tmp_path):
    from fairseq_ext.training import launch

    wiki = request.getfixturevalue("wiki_data_bin")
    checkpoint = request.getfixturevalue("tiny_pretrained_checkpoint")
    common = ["--data", str(wiki), "--save-dir", str(tmp_path / "run"), "--from-scratch", "--check-only"]
    capsys = request.getfixturevalue("capsys")
    assert launch.main(["--config", "roberta_base_continue", *common]) == 0
    assert f"training from scratch on {wiki}" in capsys.readouterr().err
    refuses("training.launch", "--config", "tiny", *common, "--restore", checkpoint,
            pattern="^--from-scratch and --restore CKPT exclude each other")
    # rerun after an interruption: resumed, the config's resets (meant for a seed checkpoint) not reapplied
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint_last.pt").symlink_to(checkpoint)
    resets = [f"checkpoint.reset_{x}=true" for x in ("optimizer", "lr_scheduler", "meters", "dataloader")]
    assert launch.main(["--config", "tiny", *common, "optimization.max_update=40", *resets]) == 0
    assert "update 20 of 40" in capsys.readouterr().err


def unlabelled(source: Path, out: Path) -> Path:
    """The SQuAD file as a test set: no answers, no is_impossible."""
    squad = json.loads(source.read_text())
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa.pop("answers")
                qa.pop("is_impossible", None)
                qa.pop("plausible_answers", None)
    out.write_text(json.dumps(squad))
    return out


@case("predict_squad2: an unlabelled test file: predictions, null odds and n-best, no scores")
def _(request, tmp_path):
    capsys = request.getfixturevalue("capsys")
    args = ["--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"), "--gpt2-bpe",
            request.getfixturevalue("gpt2_bpe_dir"), "--device", "cpu"]
    labelled = squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    test = unlabelled(labelled, tmp_path / "test.json")
    printed = in_process("commands.predict_squad2", *args, "--data", test, "--out", tmp_path / "test-out",
                         capsys=capsys)
    assert "has no answers: predictions written, nothing scored" in printed
    assert sorted(os.listdir(tmp_path / "test-out")) == [MARKER, "nbest_predictions.json", "null_odds.json",
                                                          "predictions.json"]
    in_process("commands.predict_squad2", *args, "--data", labelled, "--out", tmp_path / "dev-out",
               capsys=capsys)
    for name in ("predictions.json", "null_odds.json", "nbest_predictions.json"):  # the same answers
        assert (tmp_path / "test-out" / name).read_text() == (tmp_path / "dev-out" / name).read_text()


# --- tracebacks instead of one line ------------------------------------------------------------------------

@case("split_data: --outdir is a file")
def _(request, tmp_path):
    (tmp_path / "a-file").write_text("x")
    fails("split_data.py", "--inputs", corpus_file(tmp_path), "--outdir", tmp_path / "a-file", "--valid-docs",
          2, "--quiet", pattern="a-file exists and is not a directory")


@case("split_data: --outdir unwritable")
def _(request, tmp_path):
    fails("split_data.py", "--inputs", corpus_file(tmp_path), "--outdir", "/sys/roberta-split",
          "--valid-docs", 2, "--quiet", pattern="cannot write /sys/roberta-split: ")


@case("split_data: --outdir /dev/full")
def _(request, tmp_path):
    fails("split_data.py", "--inputs", corpus_file(tmp_path), "--outdir", "/dev/full", "--valid-docs", 2,
          "--quiet", pattern="/dev/full exists and is not a directory")


@case("bpe_encode: --outputs /dev/full")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    fails("bpe_encode.py", "--encoder-json", bpe / "encoder.json", "--vocab-bpe", bpe / "vocab.bpe",
          "--inputs", corpus_file(tmp_path), "--outputs", "/dev/full", "--quiet",
          pattern="cannot write /dev/full: No space left on device")


@case("prepare_corpus: a malformed dict.txt line")
def _(request, tmp_path):
    bpe = bpe_dir_with(request.getfixturevalue("gpt2_bpe_dir"), tmp_path, dict_txt=MALFORMED_DICT)
    fails("prepare_corpus.py", "--raw-dir", request.getfixturevalue("wiki_raw_dir"), "--gpt2-bpe", bpe,
          "--destdir", tmp_path / "data-bin", "--quiet",
          pattern=r"dict.txt: line 2: not a fairseq dictionary")
    assert not (tmp_path / "data-bin").exists()


@case("prepare_corpus: --destdir is a file")
def _(request, tmp_path):
    (tmp_path / "a-file").write_text("x")
    fails("prepare_corpus.py", "--raw-dir", request.getfixturevalue("wiki_raw_dir"), "--gpt2-bpe",
          request.getfixturevalue("gpt2_bpe_dir"), "--destdir", tmp_path / "a-file", "--quiet",
          pattern="a-file exists and is not a directory")


@case("prepare_corpus: --destdir is the raw directory: refused, the raw files intact")
def _(request, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("data.train.raw", "data.valid.raw"):
        (raw / name).write_bytes((request.getfixturevalue("wiki_raw_dir") / name).read_bytes())
    before = snapshot(raw)
    fails("prepare_corpus.py", "--raw-dir", raw, "--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"),
          "--destdir", raw, "--quiet", pattern="contains the input")
    assert snapshot(raw) == before


def bpe_splits(request, tmp_path: Path) -> Path:
    """data.{train,valid}.bpe of a few wiki lines (bpe_encode.py output)."""
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    directory = tmp_path / "bpe"
    directory.mkdir()
    raw = request.getfixturevalue("wiki_raw_dir")
    for split in ("train", "valid"):
        succeeds("bpe_encode.py", "--encoder-json", bpe / "encoder.json", "--vocab-bpe", bpe / "vocab.bpe",
                 "--inputs", raw / f"data.{split}.raw", "--outputs", directory / f"data.{split}.bpe",
                 "--keep-empty", "--workers", 1, "--quiet")
    return directory


@case("preprocess.sh: a malformed dict.txt line")
def _(request, tmp_path):
    bad = tmp_path / "dict.txt"
    bad.write_bytes(MALFORMED_DICT)
    fails("preprocess.sh", bpe_splits(request, tmp_path), tmp_path / "data-bin", bad,
          pattern=r"dict.txt: line 2: not a fairseq dictionary")
    assert not (tmp_path / "data-bin").exists()


@case("preprocess.sh: DESTDIR is a file")
def _(request, tmp_path):
    (tmp_path / "a-file").write_text("x")
    fails("preprocess.sh", bpe_splits(request, tmp_path), tmp_path / "a-file",
          request.getfixturevalue("gpt2_bpe_dir") / "dict.txt",
          pattern="a-file exists and is not a directory")


@case("pretrain.sh: a text file as --restore checkpoint (KeyError: 101)")
def _(request, tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("hello, this is not a checkpoint\n")
    refuses("training.launch", "--config", "tiny", "--data", request.getfixturevalue("wiki_data_bin"),
            "--save-dir", tmp_path / "run", "--restore", text, "--check-only",
            pattern=f"cannot load checkpoint {text}: not a PyTorch checkpoint \\(KeyError: 101\\)")


@case("pretrain.sh: common.fp16=true with the tiny config (common.cpu=true)")
def _(request, tmp_path):
    refuses("training.launch", "--config", "tiny", "--data", request.getfixturevalue("wiki_data_bin"),
            "--save-dir", tmp_path / "run", "common.fp16=true", "--check-only",
            pattern="common.fp16=true with common.cpu=true")
    assert not (tmp_path / "run").exists()


def three_document_data_bin(request, tmp_path: Path) -> Path:
    corpus = REPO / "scripts" / "sample" / "corpus.txt"
    succeeds("split_data.py", "--inputs", corpus, "--outdir", tmp_path / "raw", "--valid-docs", 3,
             "--test-docs", 0, "--quiet")
    succeeds("prepare_corpus.py", "--raw-dir", tmp_path / "raw", "--gpt2-bpe",
             request.getfixturevalue("gpt2_bpe_dir"), "--destdir", tmp_path / "data-bin", "--workers", 1,
             "--quiet")
    return tmp_path / "data-bin"


@case("pretrain.sh: the tiny config on a 3-document valid split trains and validates")
def _(request, tmp_path):
    data = three_document_data_bin(request, tmp_path)
    succeeds("pretrain.sh", "--config", "tiny", "--data", data, "--save-dir", tmp_path / "run",
             "optimization.max_update=2", "dataset.validate_interval_updates=2")
    assert len(training_records(tmp_path / "run", "valid")) >= 1


@case("pretrain.sh: a validation split smaller than required_batch_size_multiple: one line before training")
def _(request, tmp_path):
    data = three_document_data_bin(request, tmp_path)
    refuses("training.launch", "--config", "tiny", "--data", data, "--save-dir", tmp_path / "run",
            "dataset.required_batch_size_multiple=8", "--check-only",
            pattern=r"the 'valid' split of .* has [1-7] samples, fewer than "
                    "dataset.required_batch_size_multiple")


@case("predict_squad2: --out is a file: refused before inference")
def _(request, tmp_path):
    (tmp_path / "a-file").write_text("x")
    forbid(request.getfixturevalue("monkeypatch"), "fairseq_ext.commands.predict_squad2", "load_model")
    refuses("commands.predict_squad2", "--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"),
            "--data", squad_articles(VALID_ARTICLES, tmp_path / "dev.json"), "--gpt2-bpe",
            request.getfixturevalue("gpt2_bpe_dir"), "--out", tmp_path / "a-file",
            pattern="a-file exists and is not a directory")


@case("predict_squad2, evaluate_hf: --max-tokens 0 or --batch-size 0: refused before any file is read")
def _(request, tmp_path):
    for module, model in (("predict_squad2", ["--checkpoint"]), ("evaluate_hf", ["--model"])):
        for option in ("--max-tokens", "--batch-size"):
            rejects(f"commands.{module}", *model, tmp_path / "missing", "--data", tmp_path / "missing.json",
                    "--out", tmp_path / "out", option, "0", capsys=request.getfixturevalue("capsys"),
                    pattern=f"argument {option}: must be at least 1: 0")


@case("evaluate_squad2: -o a directory")
def _(request, tmp_path):
    data, predictions, _ = squad_and_predictions(tmp_path, 0.5)
    fails("evaluate_squad2.py", data, predictions, "-o", tmp_path, pattern="is a directory: give a file name")


@case("evaluate_squad2: -o /dev/full")
def _(request, tmp_path):
    data, predictions, _ = squad_and_predictions(tmp_path, 0.5)
    fails("evaluate_squad2.py", data, predictions, "-o", "/dev/full",
          pattern="cannot write /dev/full: No space left on device")


@case("evaluate_squad2: stdout is /dev/full")
def _(request, tmp_path):
    data, predictions, _ = squad_and_predictions(tmp_path, 0.5)
    with open("/dev/full", "w") as full:
        result = subprocess.run(command("evaluate_squad2.py", data, predictions), stdout=full,
                                stderr=subprocess.PIPE, text=True, env=environment(), timeout=TIMEOUT)
    assert_one_line_error(result, "error: No space left on device")


@case("SIGINT while a command imports torch: one line, exit 130, nothing written")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    for tool, args in [  # (prepare_corpus.py imports no torch: test_prepare_corpus.py checks it)
        ("predict_squad2.py", ["--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"), "--data",
                               squad_articles(VALID_ARTICLES, tmp_path / "dev.json"), "--gpt2-bpe", bpe,
                               "--out"])]:
        out = tmp_path / tool
        result = interrupt_at("import torch", tool, [*args, out], signal.SIGINT, tmp_path)
        assert_interrupted(result, signal.SIGINT)
        assert not out.exists()
        assert_no_staging(tmp_path)


@case("pretrain.sh: SIGKILL between checkpoints, then the same command: no duplicate updates in the log")
def _(request, tmp_path):
    save_dir = tmp_path / "run"
    args = ["--config", "tiny", "--data", request.getfixturevalue("wiki_data_bin"), "--save-dir", save_dir,
            "optimization.max_update=30", "checkpoint.save_interval_updates=10"]
    process = subprocess.Popen(command("pretrain.sh", *args), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=environment(), cwd=REPO)
    deadline = time.monotonic() + TIMEOUT
    # checkpoints every 10 updates (set above): killed after the record of update 15, it loses the updates
    # after 10 (a SIGTERM saves first: tests/test_pretrain.py, docs/preemption.md)
    while not any(r["num_updates"] == "15" for r in _records(save_dir)):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    resumed = succeeds("pretrain.sh", *args)
    assert "resuming from" in resumed.stderr and "removed" in resumed.stderr
    assert [r["num_updates"] for r in training_records(save_dir)] == ["5", "10", "15", "20", "25", "30"]
    assert [r["valid_num_updates"] for r in training_records(save_dir, "valid")] == ["10", "20", "30"]


def _records(save_dir: Path) -> list[dict]:
    return training_records(save_dir) if (save_dir / "train_log.json").is_file() else []


# --- the export and the Hugging Face side ----------------------------------------------------------------

@pytest.fixture(scope="module")
def squad_export(tiny_squad_checkpoint, gpt2_bpe_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "squad"
    succeeds("fairseq_to_hf.py", "--checkpoint", tiny_squad_checkpoint, "--gpt2-bpe", gpt2_bpe_dir,
             "--out", out)
    return out


@pytest.fixture(scope="module")
def mlm_export(tiny_pretrained_checkpoint, gpt2_bpe_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "mlm"
    succeeds("fairseq_to_hf.py", "--checkpoint", tiny_pretrained_checkpoint, "--gpt2-bpe", gpt2_bpe_dir,
             "--out", out)
    return out


def copy_tree(source: Path, destination: Path) -> Path:
    import shutil

    shutil.copytree(source, destination)
    return destination


@case("fairseq_to_hf: --force --out the run directory holding the checkpoint: refused, nothing deleted")
def _(request, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    checkpoint = run_dir / "checkpoint_best.pt"
    checkpoint.write_bytes(request.getfixturevalue("tiny_squad_checkpoint").read_bytes())
    (run_dir / "train_log.json").write_text("{}\n")
    before = snapshot(run_dir)
    refuses("commands.fairseq_to_hf", "--checkpoint", checkpoint, "--gpt2-bpe",
            request.getfixturevalue("gpt2_bpe_dir"), "--out", run_dir, "--force",
            pattern="contains the input")
    assert snapshot(run_dir) == before


@case("fairseq_to_hf: --force --out a data directory or the repository (not an export): refused")
def _(request, tmp_path):
    data = copy_tree(request.getfixturevalue("squad2_data_bin"), tmp_path / "data-bin")
    before = snapshot(data)
    for out in (data, REPO):
        refuses("commands.fairseq_to_hf", "--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"),
                "--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"), "--out", out, "--force",
                pattern="not written by fairseq_to_hf|holds the output of prepare_squad2, not fairseq_to_hf")
    assert snapshot(data) == before


@case("fairseq_to_hf: --force replaces an earlier export, with ordinary permissions")
def _(request, tmp_path):
    out = copy_tree(request.getfixturevalue("squad_export"), tmp_path / "hf")
    (out / "config.json").write_text("{}")  # an earlier export, damaged
    succeeds("fairseq_to_hf.py", "--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"),
             "--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"), "--out", out, "--force")
    assert json.loads((out / "config.json").read_text())["model_type"] == "roberta"
    mask = os.umask(0)
    os.umask(mask)
    assert {path.stat().st_mode & 0o777 for path in out.iterdir()} == {0o666 & ~mask}
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask
    assert_no_staging(tmp_path)


@case("fairseq_to_hf: a text file as checkpoint (KeyError: 101)")
def _(request, tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("hello, this is not a checkpoint\n")
    refuses("commands.fairseq_to_hf", "--checkpoint", text, "--gpt2-bpe",
            request.getfixturevalue("gpt2_bpe_dir"), "--out", tmp_path / "hf",
            pattern=r"not a PyTorch checkpoint \(KeyError: 101\)")
    assert not (tmp_path / "hf").exists()


@case("fairseq_to_hf: killed (SIGTERM) while writing: the earlier export intact, no staging left")
def _(request, tmp_path):
    out = copy_tree(request.getfixturevalue("squad_export"), tmp_path / "hf")
    (out / "README.md").write_text("an earlier export's card\n")  # what the new export would replace
    before = snapshot(out)
    args = ["--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"), "--gpt2-bpe",
            request.getfixturevalue("gpt2_bpe_dir"), "--out", out, "--force"]
    assert_interrupted(interrupt_at("staged", "fairseq_to_hf.py", args, signal.SIGTERM, tmp_path),
                       signal.SIGTERM)
    assert snapshot(out) == before
    assert_no_staging(tmp_path)


@case("fairseq_to_hf: a same-size --dict with two lines swapped: refused")
def _(request, tmp_path):
    data = request.getfixturevalue("squad2_data_bin")  # the checkpoint's task.data: its own dict.txt
    lines = (data / "dict.txt").read_text().splitlines(keepends=True)
    lines[100], lines[101] = lines[101], lines[100]
    swapped = tmp_path / "dict.txt"
    swapped.write_text("".join(lines))
    refuses("commands.fairseq_to_hf", "--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"),
            "--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"), "--dict", swapped,
            "--out", tmp_path / "hf",
            pattern=r"differs from .*dict.txt.* the model was trained with.*line 101")
    assert not (tmp_path / "hf").exists()


@case("evaluate_hf: a masked-LM export (no trained QA head): refused")
def _(request, tmp_path):
    refuses("commands.evaluate_hf", "--model", request.getfixturevalue("mlm_export"), "--data",
            squad_articles(VALID_ARTICLES, tmp_path / "dev.json"), "--out", tmp_path / "out",
            pattern=r"no trained question-answering head .*qa_outputs")
    assert not (tmp_path / "out").exists()


@case("evaluate_hf: a model without trained QA weights: refused")
def _(request, tmp_path):
    from safetensors.torch import load_file, save_file

    model = copy_tree(request.getfixturevalue("squad_export"), tmp_path / "hf")
    weights = load_file(model / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("qa_outputs")},
              model / "model.safetensors", metadata={"format": "pt"})
    refuses("commands.evaluate_hf", "--model", model, "--data",
            squad_articles(VALID_ARTICLES, tmp_path / "dev.json"), "--out", tmp_path / "out",
            pattern=r"no trained question-answering head .*qa_outputs")


@case("evaluate_hf: a model_type bert model: refused")
def _(request, tmp_path):
    model = copy_tree(request.getfixturevalue("squad_export"), tmp_path / "hf")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="bert", architectures=["BertForQuestionAnswering"])
    (model / "config.json").write_text(json.dumps(config))
    refuses("commands.evaluate_hf", "--model", model, "--data",
            squad_articles(VALID_ARTICLES, tmp_path / "dev.json"), "--out", tmp_path / "out",
            pattern=r"model_type 'bert'.* not a RoBERTa or XLM-R")


@case("evaluate_hf: an unlabelled test file: predictions, null odds and n-best, no scores")
def _(request, tmp_path):
    capsys = request.getfixturevalue("capsys")
    model = request.getfixturevalue("squad_export")
    labelled = squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    test = unlabelled(labelled, tmp_path / "test.json")
    printed = in_process("commands.evaluate_hf", "--model", model, "--data", test, "--out",
                         tmp_path / "test-out", capsys=capsys)
    assert "nothing scored" in printed
    assert sorted(os.listdir(tmp_path / "test-out")) == [MARKER, "nbest_predictions.json", "null_odds.json",
                                                          "predictions.json"]
    in_process("commands.evaluate_hf", "--model", model, "--data", labelled, "--out", tmp_path / "dev-out",
               capsys=capsys)
    for name in ("predictions.json", "null_odds.json"):
        assert (tmp_path / "test-out" / name).read_text() == (tmp_path / "dev-out" / name).read_text()


@case("evaluate_hf: --out is a file: refused before inference")
def _(request, tmp_path):
    (tmp_path / "a-file").write_text("x")
    result = fails("evaluate_hf.py", "--model", request.getfixturevalue("squad_export"), "--data",
                   squad_articles(VALID_ARTICLES, tmp_path / "dev.json"), "--out", tmp_path / "a-file",
                   pattern="a-file exists and is not a directory")
    assert "predict:" not in result.stderr  # no inference progress at all


# --- sweep 2 (issue 21): counts, worker pools, model loading, thresholds, paths -----------------------------

@case("preprocess.sh: WORKERS=0 (ZeroDivisionError in fairseq-preprocess): one line")
def _(request, tmp_path):
    args = [tmp_path / "bpe", tmp_path / "data-bin", tmp_path / "dict.txt"]
    result = subprocess.run(command("preprocess.sh", *args), capture_output=True, text=True,
                            env={**environment(), "WORKERS": "0"}, timeout=TIMEOUT, cwd=REPO)
    assert_one_line_error(result, "argument --workers: must be between 1 and 1024: 0")


@case("bpe_encode, prepare_corpus: --workers 0: one line")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    pattern = "argument --workers: must be between 1 and 1024: 0"
    fails("bpe_encode.py", "--encoder-json", bpe / "encoder.json", "--vocab-bpe", bpe / "vocab.bpe",
          "--inputs", corpus_file(tmp_path), "--outputs", tmp_path / "out.bpe", "--workers", 0,
          pattern=pattern)
    fails("prepare_corpus.py", "--raw-dir", request.getfixturevalue("wiki_raw_dir"), "--gpt2-bpe", bpe,
          "--destdir", tmp_path / "data-bin", "--workers", 0, pattern=pattern)


def child_processes(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan that no init has reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@case("bpe_encode: its main process SIGKILLed with 2 workers (fairseq's sleep forever): the workers exit")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    # stdin is a pipe kept open: two blocks go to the workers, then the main process waits for more input
    process = subprocess.Popen(command("bpe_encode.py", "--encoder-json", bpe / "encoder.json", "--vocab-bpe",
                                       bpe / "vocab.bpe", "--inputs", "-", "--outputs", tmp_path / "out.bpe",
                                       "--workers", 2, "--quiet"),
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=environment(), cwd=REPO)
    workers: list[int] = []
    try:
        process.stdin.write(b"A line of the corpus, with a few words in it.\n" * 30_000)  # 1.4 MB
        process.stdin.flush()
        wait_for(lambda: len(child_processes(process.pid)) >= 2, process, "the 2 workers to start")
        workers = child_processes(process.pid)
        process.kill()
        process.wait(timeout=TIMEOUT)
        wait_for(lambda: not any(map(running, workers)), None, f"the orphaned workers {workers} to exit",
                 timeout=30)
    finally:
        for pid in [process.pid, *workers]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


@case("predict_squad2, evaluate_hf, predict_hf: --batch-size 0, finetune_hf: --global-batch 0 (ValueError "
      "after loading)")
def _(request, tmp_path):
    capsys, data = request.getfixturevalue("capsys"), squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    model = tmp_path / "no-model-is-loaded"
    pattern = "argument --batch-size: must be at least 1: 0"
    rejects("commands.predict_squad2", "--checkpoint", model, "--data", data, "--out", tmp_path / "out",
            "--batch-size", 0, pattern=pattern, capsys=capsys)
    rejects("commands.evaluate_hf", "--model", model, "--data", data, "--out", tmp_path / "out",
            "--batch-size", 0, pattern=pattern, capsys=capsys)
    rejects("commands.predict_hf", "--model", model, "--question", "Who?", "--context", "Nobody.",
            "--batch-size", 0, pattern=pattern, capsys=capsys)
    rejects("commands.finetune_hf", "--model", model, "--train", data, "--out", tmp_path / "out",
            "--global-batch", 0, pattern="argument --global-batch: must be at least 1: 0", capsys=capsys)
    assert not (tmp_path / "out").exists()


@case("predict_squad2, evaluate_hf, predict_hf: --device cuda without it (AssertionError): one line, no load")
def _(request, tmp_path):
    import torch

    monkeypatch = request.getfixturevalue("monkeypatch")
    forbid(monkeypatch, "fairseq_ext.commands.predict_squad2", "load_model")
    forbid(monkeypatch, "fairseq_ext.hf.qa", "load_qa_model")
    device = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: absent on any machine
    pattern = f"--device {device}: (CUDA is not available on this machine|this machine has)"
    data = squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    refuses("commands.predict_squad2", "--checkpoint", request.getfixturevalue("tiny_squad_checkpoint"),
            "--data", data, "--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"), "--out", tmp_path / "out",
            "--device", device, pattern=pattern)
    refuses("commands.evaluate_hf", "--model", request.getfixturevalue("squad_export"), "--data", data,
            "--out", tmp_path / "out", "--device", device, pattern=pattern)
    refuses("commands.predict_hf", "--model", request.getfixturevalue("squad_export"), "--question", "Who?",
            "--context", "Nobody.", "--device", device, pattern=pattern)
    assert not (tmp_path / "out").exists()


@case("predict_squad2, evaluate_hf: --csv inside --out (announced, never written): written there")
def _(request, tmp_path):
    import csv

    capsys = request.getfixturevalue("capsys")
    data = squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    qids = [qa["id"] for article in json.loads(data.read_text())["data"]
            for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    for module, args in [("commands.predict_squad2", ["--checkpoint", request.getfixturevalue(
                              "tiny_squad_checkpoint"), "--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"),
                              "--device", "cpu"]),
                         ("commands.evaluate_hf", ["--model", request.getfixturevalue("squad_export")])]:
        out = tmp_path / module
        refuses(module, *args, "--data", data, "--out", out, "--csv", out / "predictions.json",
                pattern="would replace the predictions.json the command writes")
        in_process(module, *args, "--data", data, "--out", out, "--csv", out / "answers.csv", capsys=capsys)
        with open(out / "answers.csv", newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(stream))
        assert rows[0] == ["ID", "Answer"] and [row[0] for row in rows[1:]] == qids
        assert dict(rows[1:]) == json.loads((out / "predictions.json").read_text())
        assert "answers.csv" in json.loads((out / MARKER).read_text())["files"]
        assert_no_staging(tmp_path)


@case("thresholds: NaN or infinite (options, best_f1_thresh, a model's stored one): refused")
def _(request, tmp_path):
    capsys, bpe = request.getfixturevalue("capsys"), request.getfixturevalue("gpt2_bpe_dir")
    checkpoint = request.getfixturevalue("tiny_squad_checkpoint")
    export = request.getfixturevalue("squad_export")
    data = squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    export_args = ["--checkpoint", checkpoint, "--gpt2-bpe", bpe, "--out", tmp_path / "hf"]
    refuses("commands.fairseq_to_hf", *export_args, "--null-threshold", "nan",
            pattern=r"--null-threshold \(a number or 'best'\): 'nan' is not a finite number")
    results = tmp_path / "eval_results.json"
    results.write_text('{"exact": 50.0, "f1": 50.0, "best_f1_thresh": NaN}')
    refuses("commands.fairseq_to_hf", *export_args, "--null-threshold", "best", "--eval-results", results,
            pattern="eval_results.json: best_f1_thresh: nan is not a finite number")
    assert not (tmp_path / "hf").exists()
    for value in ("nan", "inf", "-inf"):
        rejects("commands.evaluate_hf", "--model", export, "--data", data, "--out", tmp_path / "out",
                f"--null-score-diff-threshold={value}", capsys=capsys,
                pattern=f"argument --null-score-diff-threshold: '{value}' is not a finite number")
    rejects("commands.predict_squad2", "--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "out",
            "--null-score-diff-threshold", "nan", capsys=capsys,
            pattern="argument --null-score-diff-threshold: 'nan' is not a finite number")
    stored = copy_tree(export, tmp_path / "stored-nan")
    config = json.loads((stored / "config.json").read_text())
    config["squad_settings"]["null_score_diff_threshold"] = float("nan")
    (stored / "config.json").write_text(json.dumps(config))  # json writes NaN
    refuses("commands.evaluate_hf", "--model", stored, "--data", data, "--out", tmp_path / "out",
            pattern="null_score_diff_threshold: nan is not a finite number")
    assert not (tmp_path / "out").exists()
    data, predictions, na_probs = squad_and_predictions(tmp_path, 0.5)
    fails("evaluate_squad2.py", data, predictions, "--na-prob-file", na_probs, "--na-prob-thresh", "nan",
          pattern="argument --na-prob-thresh/-t: 'nan' is not a finite number")


@case("evaluate_hf, predict_hf, hf_to_fairseq: a truncated model.safetensors, a config.json that disagrees")
def _(request, tmp_path):
    export, bpe = request.getfixturevalue("squad_export"), request.getfixturevalue("gpt2_bpe_dir")
    data = squad_articles(VALID_ARTICLES, tmp_path / "dev.json")
    truncated = copy_tree(export, tmp_path / "truncated")  # an interrupted download
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[:len(weights) // 2])
    resized = copy_tree(export, tmp_path / "resized")  # a config.json of another model size
    config = json.loads((resized / "config.json").read_text())
    config.update(hidden_size=2 * config["hidden_size"], intermediate_size=2 * config["intermediate_size"])
    (resized / "config.json").write_text(json.dumps(config))
    for model, pattern in [(truncated, "truncated: its weights file is damaged or truncated"),
                           (resized, r"resized: \d+ weights disagree with its config.json \(e.g. ")]:
        refuses("commands.evaluate_hf", "--model", model, "--data", data, "--out", tmp_path / "out",
                pattern=pattern)
        refuses("commands.predict_hf", "--model", model, "--question", "Who?", "--context", "Nobody.",
                pattern=pattern)
        refuses("commands.hf_to_fairseq", "--model", model, "--gpt2-bpe", bpe, "--out", tmp_path / "fairseq",
                pattern=pattern)
    assert not (tmp_path / "out").exists() and not (tmp_path / "fairseq").exists()


@case("plot_logs: --labels ../../x or a/b: refused, nothing written outside --out-dir")
def _(request, tmp_path):
    log = tmp_path / "run" / "train_log.json"
    log.parent.mkdir()
    log.write_text("")
    before = sorted(path.name for path in tmp_path.rglob("*"))
    for label in ("../../x", "a/b", ".."):
        refuses("commands.plot_logs", log, "--labels", label, "--out-dir", tmp_path / "plots",
                pattern=f"label '{re.escape(label)}' is not a plain file name")
    assert sorted(path.name for path in tmp_path.rglob("*")) == before


@case("train_spm: --character-coverage outside sentencepiece's range: one line with the reason")
def _(request, tmp_path):
    from fairseq_ext.errors import UserInputError
    from fairseq_ext.tokenizer.spm import train_sentencepiece

    fails("train_spm.py", "--inputs", corpus_file(tmp_path), "--out", tmp_path / "spm", "--vocab-size", 20,
          "--character-coverage", 1.5, "--quiet",
          pattern=r"argument --character-coverage: must be between 0.98 and 1: 1.5")
    assert not (tmp_path / "spm").exists()
    # sentencepiece's own refusal, a failed check without a message, now gives that check as its reason
    with pytest.raises(UserInputError, match=r"training failed: its check .*character_coverage\(\) >= 0.98"):
        train_sentencepiece(["a line of text"], tmp_path / "direct", 20, character_coverage=0.5)


@case("make import-hf without GPT2_BPE: no empty --gpt2-bpe (with it: passed on)")
def _(request, tmp_path):
    def recipe(*variables: str) -> str:
        result = subprocess.run(["make", "-n", "--no-print-directory", "import-hf", "MODEL=m", "OUT=o",
                                 *variables], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                                check=True)
        return result.stdout.strip().splitlines()[-1]

    assert "--gpt2-bpe" not in recipe("GPT2_BPE=") and "hf_to_fairseq.py --model m" in recipe("GPT2_BPE=")
    assert "--gpt2-bpe some/dir" in recipe("GPT2_BPE=some/dir")


@pytest.mark.parametrize("name", list(CASES))
def test_case(name, request, tmp_path):
    CASES[name](request, tmp_path)
