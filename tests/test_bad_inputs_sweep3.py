"""The third bad-input sweep (issue 28): its 26 failures and the items also seen, each a case of the
mechanism that now prevents it (docs/outputs-and-errors.md): ranges declared once, inputs checked for what
they are, fairseq's errors translated, exclusive outputs, streams as inputs. Each case fails without its
mechanism. Same helpers and conventions as tests/test_bad_inputs.py (refusals of the torch-heavy commands
in this process, the rest as the user runs them).
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Callable

import pytest

from fairseq_ext.cli import PAUSE_ENV
from tests.conftest import REPO
from tests.squad_fixtures import VALID_ARTICLES, squad_articles
from tests.test_bad_inputs import (  # noqa: F401  (mlm_export, squad_export: fixtures used here)
    TIMEOUT,
    assert_one_line_error,
    bpe_splits,
    case_registry,
    command,
    copy_tree,
    corpus_file,
    environment,
    fails,
    forbid,
    mlm_export,
    refuses,
    rejects,
    run,
    snapshot,
    squad_and_predictions,
    squad_export,
    succeeds,
    wait_for,
)

CASES, case = case_registry()


# --- tracebacks ----------------------------------------------------------------------------------------

@case("evaluate_squad2: a data file without questions ({'data': []}): one line, not ZeroDivisionError")
def _(request, tmp_path):
    data, predictions, _ = squad_and_predictions(tmp_path, 0.5)
    data.write_text(json.dumps({"version": "v2.0", "data": []}))
    for metric in ("squad", "cmrc"):  # cmrc printed F1/EM 0.000 (a silent wrong result)
        fails("evaluate_squad2.py", data, predictions, "--metric", metric, pattern="no questions to score")


@case("pretrain.sh: task.tokens_per_sample=256 on the tiny config (128 positions): one line before training")
def _(request, tmp_path):
    refuses("training.launch", "--config", "tiny", "--data", request.getfixturevalue("wiki_data_bin"),
            "--save-dir", tmp_path / "run", "task.tokens_per_sample=256", "--check-only",
            pattern=r"task.tokens_per_sample=256 exceeds the model's 128 positions \(model.max_positions\)")


@case("pretrain.sh: --restore of a 2-layer checkpoint with model.encoder_layers=3: compared before loading")
def _(request, tmp_path):
    refuses("training.launch", "--config", "tiny", "--data", request.getfixturevalue("wiki_data_bin"),
            "--save-dir", tmp_path / "run", "--restore",
            request.getfixturevalue("tiny_pretrained_checkpoint"), "model.encoder_layers=3", "--check-only",
            pattern=r"has encoder_layers=2 but the config asks for model.encoder_layers=3: set "
                    r"model.encoder_layers=2")


@case("pretrain.sh: resuming a run after changing model.encoder_embed_dim: compared before loading")
def _(request, tmp_path):
    save_dir = tmp_path / "run"
    save_dir.mkdir()
    shutil.copyfile(request.getfixturevalue("tiny_pretrained_checkpoint"), save_dir / "checkpoint_last.pt")
    refuses("training.launch", "--config", "tiny", "--data", request.getfixturevalue("wiki_data_bin"),
            "--save-dir", save_dir, "model.encoder_embed_dim=32", "--check-only",
            pattern=r"has encoder_embed_dim=64 but the config asks for model.encoder_embed_dim=32: resume "
                    r"with the model settings the run started with")


def data_bin_copy(request, tmp_path: Path) -> Path:
    return copy_tree(request.getfixturevalue("wiki_data_bin"), tmp_path / "data-bin")


@case("prepare_corpus + pretrain.sh: an empty train split (written with exit 0, then 'cannot mmap')")
def _(request, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.train.raw").write_text("")
    (raw / "data.valid.raw").write_text("A valid document.\n")
    fails("prepare_corpus.py", "--raw-dir", raw, "--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir"),
          "--destdir", tmp_path / "db", "--quiet", pattern=r"data.train.raw holds no text \(empty or blank\)")
    assert not (tmp_path / "db").exists()
    data = data_bin_copy(request, tmp_path)  # a data-bin with an empty train split, however it was made
    from fairseq_ext.corpus.indexed import IndexedDatasetWriter

    writer = IndexedDatasetWriter(str(data / "train"), "uint16")
    writer.finalize()
    refuses("training.launch", "--config", "tiny", "--data", data, "--save-dir", tmp_path / "run",
            "--check-only", pattern=r"the 'train' split of .*data-bin is empty")


@case("pretrain.sh: a dict.txt shorter than the ids in train.bin (IndexError in fairseq): one line")
def _(request, tmp_path):
    data = data_bin_copy(request, tmp_path)
    lines = (data / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (data / "dict.txt").write_text("".join(lines[:100]), encoding="utf-8")
    refuses("training.launch", "--config", "tiny", "--data", data, "--save-dir", tmp_path / "run",
            "--check-only", pattern=r"token id \d+ in .*train.bin, but the dictionary has 104 symbols")


@case("pretrain.sh: a truncated train.bin ('offset must be non-negative'): one line")
def _(request, tmp_path):
    data = data_bin_copy(request, tmp_path)
    content = (data / "train.bin").read_bytes()
    (data / "train.bin").write_bytes(content[:len(content) // 2])
    refuses("training.launch", "--config", "tiny", "--data", data, "--save-dir", tmp_path / "run",
            "--check-only", pattern=rf"train.bin has {len(content) // 2} bytes but its index .* describes "
                                    rf"{len(content)} \(a truncated or mismatched copy\)")


def limit_file_size(limit: int) -> Callable[[], None]:
    """A child's file size limit: writing beyond it fails with EFBIG, as writing to a full disk fails with
    ENOSPC (no mount needed; SIGXFSZ ignored so that the write fails instead of killing the process)."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@case("fairseq_to_hf --force when the disk fills (SafetensorError): one line, the earlier export intact")
def _(request, tmp_path):
    out = copy_tree(request.getfixturevalue("squad_export"), tmp_path / "hf")
    before = snapshot(out)
    result = subprocess.run(command("fairseq_to_hf.py", "--checkpoint",
                                    request.getfixturevalue("tiny_squad_checkpoint"), "--gpt2-bpe",
                                    request.getfixturevalue("gpt2_bpe_dir"), "--out", out, "--force",
                                    "--no-verify"),  # the write is the point
                            capture_output=True, text=True, env=environment(), timeout=TIMEOUT, cwd=REPO,
                            preexec_fn=limit_file_size(100_000))
    assert_one_line_error(result, r"cannot write .*hf: File too large \(the earlier .*hf is intact\)")
    assert snapshot(out) == before and sorted(os.listdir(tmp_path)) == ["hf"]


# --- silent wrong results -------------------------------------------------------------------------------

@case("predict_squad2 --n-best-size 0 / --max-answer-length 0 (every answer ''): refused at parsing")
def _(request, tmp_path):
    for option in ("--n-best-size", "--max-answer-length"):
        rejects("commands.predict_squad2", "--checkpoint", tmp_path / "missing", "--data",
                tmp_path / "m.json", "--out", tmp_path / "out", option, "0",
                capsys=request.getfixturevalue("capsys"), pattern=f"argument {option}: must be at least 1: 0")


@case("prepare_squad2 --doc-stride -5 (tokens in no window) / --max-query-length 0: refused at parsing")
def _(request, tmp_path):
    for option, value, bound in (("--doc-stride", "-5", "at least 0"), ("--max-query-length", "0",
                                                                        "at least 1")):
        rejects("commands.prepare_squad2", "--train", tmp_path / "m.json", "--destdir", tmp_path / "out",
                option, value, capsys=request.getfixturevalue("capsys"),
                pattern=f"argument {option}: must be {bound}: {value}")


@case("QASettings from any source (a model's config.json, a task config): the same ranges")
def _(request, tmp_path):
    from fairseq_ext.errors import UserInputError
    from fairseq_ext.squad.settings import QASettings

    for values, pattern in (({"doc_stride": -5}, "doc_stride: must be at least 0: -5"),
                            ({"n_best_size": 0}, "n_best_size: must be at least 1: 0"),
                            ({"max_answer_length": 2.5}, "max_answer_length: not a whole number")):
        with pytest.raises(UserInputError, match=pattern):
            QASettings.from_object(values)


@case("evaluate_hf --max-samples -1 (a Python slice: 17 of 18) / 0 ('no questions'): refused at parsing")
def _(request, tmp_path):
    for value in ("-1", "0"):
        rejects("commands.evaluate_hf", "--model", tmp_path / "missing", "--data", tmp_path / "m.json",
                "--out", tmp_path / "out", "--max-samples", value, capsys=request.getfixturevalue("capsys"),
                pattern=f"argument --max-samples: must be at least 1: {value}")


@case("prepare_corpus --srcdict an empty file (99.4% <unk>): refused")
def _(request, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    fails("prepare_corpus.py", "--raw-dir", request.getfixturevalue("wiki_raw_dir"), "--gpt2-bpe",
          request.getfixturevalue("gpt2_bpe_dir"), "--srcdict", tmp_path / "empty.txt", "--destdir",
          tmp_path / "db", pattern=r"dictionary .*empty.txt is empty")
    assert not (tmp_path / "db").exists()


@case("prepare_corpus with a dictionary of another tokenizer (most tokens <unk>): refused unless --max-unk 1")
def _(request, tmp_path):
    small = tmp_path / "dict.txt"
    small.write_text("".join(f"{i} 1\n" for i in range(50000, 50200)))
    args = ["--raw-dir", request.getfixturevalue("wiki_raw_dir"), "--gpt2-bpe",
            request.getfixturevalue("gpt2_bpe_dir"), "--srcdict", small, "--destdir", tmp_path / "db",
            "--quiet", "--workers", 1]
    fails("prepare_corpus.py", *args, pattern=r"data.train.raw \(first lines\): \d+ of \d+ tokens "
                                              r"\(\d+.\d%\) are not in the dictionary")
    succeeds("prepare_corpus.py", *args, "--max-unk", 1)


@case("preprocess.sh given raw text instead of BPE ids (98% <unk>): refused")
def _(request, tmp_path):
    raw = request.getfixturevalue("wiki_raw_dir")
    text = tmp_path / "text"
    text.mkdir()
    for split in ("train", "valid"):
        shutil.copyfile(raw / f"data.{split}.raw", text / f"data.{split}.bpe")
    fails("preprocess.sh", text, tmp_path / "db", request.getfixturevalue("gpt2_bpe_dir") / "dict.txt",
          pattern=r"data.train.bpe \(first lines\): .* not in the dictionary .* is it raw text\? encode it "
                  "with bpe_encode.py first")
    assert not (tmp_path / "db").exists()


def without_tokenizer(export: Path, tmp_path: Path) -> Path:
    model = copy_tree(export, tmp_path / "hf-copy")
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        (model / name).unlink()
    return model


@case("predict_hf / evaluate_hf on an export copied without its tokenizer files: the files are named")
def _(request, tmp_path):
    model = without_tokenizer(request.getfixturevalue("squad_export"), tmp_path)
    pattern = r"hf-copy has no tokenizer files \(tokenizer.json or vocab.json \+ merges.txt; it holds "
    refuses("commands.predict_hf", "--model", model, "--question", "Who?", "--context", "Someone.",
            pattern=pattern)
    refuses("commands.evaluate_hf", "--model", model, "--data",
            squad_articles(VALID_ARTICLES, tmp_path / "dev.json"), "--out", tmp_path / "out", pattern=pattern)
    assert not (tmp_path / "out").exists()


@case("hf_to_fairseq on an HF directory without tokenizer files (blamed the vocabulary order): named")
def _(request, tmp_path):
    model = without_tokenizer(request.getfixturevalue("mlm_export"), tmp_path)
    for tokenizer in ([], ["--gpt2-bpe", request.getfixturevalue("gpt2_bpe_dir")]):
        refuses("commands.hf_to_fairseq", "--model", model, *tokenizer, "--out", tmp_path / "out",
                pattern=r"hf-copy has no tokenizer files \(tokenizer.json or vocab.json \+ merges.txt")


@case("hf_to_fairseq / evaluate_hf: tokenizer files of another model (more tokens than embedding rows)")
def _(request, tmp_path):
    model = copy_tree(request.getfixturevalue("squad_export"), tmp_path / "hf-copy")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "vocab_size": 1000}))
    refuses("commands.predict_hf", "--model", model, "--question", "Who?", "--context", "Someone.",
            pattern=r"its tokenizer has \d+ tokens but the model 1000 embedding rows")


@case("fairseq_to_hf --tolerance nan or -1 (ran the export, then 'verification failed'): refused at parsing")
def _(request, tmp_path):
    for value, pattern in (("nan", "'nan' is not a finite number"), ("-1", "must be at least 0: -1")):
        rejects("commands.fairseq_to_hf", "--checkpoint", tmp_path / "missing.pt", "--out", tmp_path / "out",
                "--tolerance", value, capsys=request.getfixturevalue("capsys"),
                pattern=f"argument --tolerance: {pattern}")


# --- lost data -------------------------------------------------------------------------------------------

@case("fairseq_to_hf: two runs to the same new --out at once: they cannot both succeed")
def _(request, tmp_path):
    """The first export pauses with its output staged (not renamed into place); the second, started then,
    is refused at once. (The commit-time race, both past their checks: tests/test_outputs.py.)"""
    out = tmp_path / "hf"
    checkpoint = request.getfixturevalue("tiny_squad_checkpoint")
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    ready = tmp_path / "paused"
    first = subprocess.Popen(command("fairseq_to_hf.py", "--checkpoint", checkpoint, "--gpt2-bpe", bpe,
                                     "--out", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**environment(), PAUSE_ENV: f"staged:{ready}"}, cwd=REPO)
    try:
        wait_for(ready.exists, first, "the first export to stage its output")
        other = request.getfixturevalue("tiny_pretrained_checkpoint")
        second = run("fairseq_to_hf.py", "--checkpoint", other, "--gpt2-bpe", bpe, "--out", out)
        assert_one_line_error(second, r"hf is being written by another process \(pid \d+\)")
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=TIMEOUT)
    finally:
        first.kill()
    assert first.returncode == 143 and not out.exists()


# --- unclear messages ------------------------------------------------------------------------------------

@case("preprocess.sh --workers 1 (answered with a bare usage line): passed to the command")
def _(request, tmp_path):
    succeeds("preprocess.sh", bpe_splits(request, tmp_path), tmp_path / "db",
             request.getfixturevalue("gpt2_bpe_dir") / "dict.txt", "--workers", 1)
    assert (tmp_path / "db" / "train.bin").is_file()
    help_text = succeeds("preprocess.sh", "--help").stdout
    assert "--workers" in help_text and "--max-unk" in help_text


def fifo_of(path: Path, content: bytes) -> tuple[Path, threading.Thread]:
    """A FIFO next to ``path`` that a thread fills with ``content`` (as `zcat corpus.gz |` would)."""
    fifo = path.with_suffix(".fifo")
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as stream:
            stream.write(content)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return fifo, writer


@case("split_data from a FIFO and from <(zcat corpus.gz) ('input not found'): read, same split as the file")
def _(request, tmp_path):
    corpus = corpus_file(tmp_path, documents=40)
    split = ["--valid-docs", 4, "--test-docs", 3, "--quiet"]
    succeeds("split_data.py", "--inputs", corpus, "--outdir", tmp_path / "from-file", *split)
    fifo, writer = fifo_of(corpus, corpus.read_bytes())
    succeeds("split_data.py", "--inputs", fifo, "--outdir", tmp_path / "from-fifo", *split)
    writer.join()
    (tmp_path / "corpus.gz").write_bytes(gzip.compress(corpus.read_bytes()))
    script = command("split_data.py", "--inputs", "<(zcat corpus.gz)", "--outdir", "from-zcat", *split)
    done = subprocess.run(["bash", "-c", " ".join(map(str, script)).replace("'", "")], capture_output=True,
                          text=True, env=environment(), timeout=TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for copy in ("from-fifo", "from-zcat"):
        assert snapshot(tmp_path / copy) == snapshot(tmp_path / "from-file")
    assert not [p for p in tmp_path.rglob(".input-*")]  # the temporary copy of the stream is gone


@case("train_spm from a FIFO ('input not found'): trained, the same model as from the file")
def _(request, tmp_path):
    corpus = request.getfixturevalue("wiki_raw_dir") / "data.train.raw"
    args = ["--vocab-size", 300, "--threads", 1, "--quiet"]
    succeeds("train_spm.py", "--inputs", corpus, "--out", tmp_path / "from-file", *args)
    fifo, writer = fifo_of(tmp_path / "corpus", corpus.read_bytes())
    succeeds("train_spm.py", "--inputs", fifo, "--out", tmp_path / "from-fifo", *args)
    writer.join()
    assert snapshot(tmp_path / "from-fifo") == snapshot(tmp_path / "from-file")


# --- also seen -------------------------------------------------------------------------------------------

@case("bpe_encode: invalid UTF-8, an output named twice, standard input or output named twice: exit 2")
def _(request, tmp_path):
    bpe = request.getfixturevalue("gpt2_bpe_dir")
    corpus = corpus_file(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff not UTF-8\n")
    for args, pattern in (
            (["--inputs", bad, "--outputs", tmp_path / "o.bpe"], r"bad.txt: line 2: invalid UTF-8"),
            (["--inputs", corpus, corpus, "--outputs", tmp_path / "o.bpe", tmp_path / "o.bpe"],
             "is given twice"),
            (["--inputs", corpus, corpus, "--outputs", "-", "-"], "output - is given twice"),
            (["--inputs", "-", "-", "--outputs", tmp_path / "a", tmp_path / "b"],
             "an input stream .* is given twice")):
        fails("bpe_encode.py", "--tokenizer", bpe, *args, "--workers", 1, "--quiet", pattern=pattern)
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "corpus"]


@case("split_data: impossible ratios are refused before any input is read")
def _(request, tmp_path):
    fifo = tmp_path / "never-written.fifo"
    os.mkfifo(fifo)  # reading it would block: the refusal must come first
    fails("split_data.py", "--inputs", fifo, "--outdir", tmp_path / "out", "--valid-ratio", 0.7,
          "--test-ratio", 0.5, pattern="--valid-ratio 0.7 and --test-ratio 0.5 leave no documents for train")
    for option, value in (("--valid-ratio", "1.5"), ("--test-ratio", "nan"), ("--valid-docs", "-1")):
        fails("split_data.py", "--inputs", fifo, "--outdir", tmp_path / "out", option, value,
              pattern=f"argument {option}: ")


@case("JSON written with a UTF-8 byte order mark (refused as not JSON): read")
def _(request, tmp_path):
    data, predictions, _ = squad_and_predictions(tmp_path, 0.5)
    expected = succeeds("evaluate_squad2.py", data, predictions).stdout
    for path in (data, predictions):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert succeeds("evaluate_squad2.py", data, predictions).stdout == expected
    converted = tmp_path / "converted.json"
    succeeds("to_squad.py", "--format", "squad", data, converted)
    assert json.loads(converted.read_text(encoding="utf-8")) == json.loads(data.read_text("utf-8-sig"))


@case("to_squad --format hw7: answer_end < answer_start (an answer_start that missed, counted as found)")
def _(request, tmp_path):
    context = "The cat sat on the mat near the dog."
    questions = [  # (answer, answer_start, answer_end) as HW7 files hold them
        ("mat", 12, 9),  # start wrong, end before it: the text is near the start
        ("dog", context.index("dog") + 5, context.index("dog") + 2),  # end right (inclusive)
        ("cow", 4, 2),  # not in the context at all
        ("cat", 4, 6)]  # consistent
    source = tmp_path / "hw7.json"
    source.write_text(json.dumps({"paragraphs": [context], "questions": [
        {"id": i, "paragraph_id": 0, "question_text": "?", "answer_text": text, "answer_start": start,
         "answer_end": end} for i, (text, start, end) in enumerate(questions)]}))
    done = succeeds("to_squad.py", "--format", "hw7", source, tmp_path / "out.json")
    squad = json.loads((tmp_path / "out.json").read_text())
    starts = [qa["answers"][0]["answer_start"] for qa in squad["data"][0]["paragraphs"][0]["qas"]]
    assert starts == [context.index("mat"), context.index("dog"), -1, context.index("cat")]
    assert "1 answers not found in their context" in done.stderr


# --- a fresh sweep after the mechanisms (other tools, other data): what it still found ---------------------

@case("bpe_encode/train_spm: workers, threads, seeds too large (OverflowError, ValueError): refused")
def _(request, tmp_path):
    huge = "9" * 21
    corpus = corpus_file(tmp_path)
    fails("bpe_encode.py", "--tokenizer", request.getfixturevalue("gpt2_bpe_dir"), "--inputs", corpus,
          "--outputs", tmp_path / "o.bpe", "--workers", huge,
          pattern=r"argument --workers: must be between 1 and 1024")
    for option, value in (("--threads", huge), ("--seed", str(2**32)), ("--seed", "-1"),
                          ("--max-sentences", str(2**31))):
        fails("train_spm.py", "--inputs", corpus, "--out", tmp_path / "spm", "--vocab-size", 300, option,
              value, pattern=f"argument {option}: must be between")
    assert sorted(os.listdir(tmp_path)) == ["corpus"]


@case("to_squad from a FIFO ('input file not found'): read; a checkpoint FIFO or directory: named")
def _(request, tmp_path):
    data, predictions, _ = squad_and_predictions(tmp_path, 0.5)
    succeeds("to_squad.py", "--format", "squad", data, tmp_path / "from-file.json")
    fifo, writer = fifo_of(data, data.read_bytes())
    succeeds("to_squad.py", "--format", "squad", fifo, tmp_path / "from-fifo.json")
    writer.join()
    assert (tmp_path / "from-fifo.json").read_bytes() == (tmp_path / "from-file.json").read_bytes()
    stream = tmp_path / "checkpoint.fifo"
    os.mkfifo(stream)  # torch.load would seek in it
    refuses("commands.fairseq_to_hf", "--checkpoint", stream, "--out", tmp_path / "hf",
            pattern="checkpoint must be a regular file, not a stream")
    refuses("commands.fairseq_to_hf", "--checkpoint", tmp_path, "--out", tmp_path / "hf",
            pattern="checkpoint is a directory, not a file")


@case("evaluate_squad2 --metric cmrc, predictions of another file (F1/EM 0.000, exit 0): refused")
def _(request, tmp_path):
    data, _, _ = squad_and_predictions(tmp_path, 0.5)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"not-a-question-of-data": "x"}))
    fails("evaluate_squad2.py", data, other, "--metric", "cmrc",
          pattern="none of the \\d+ questions has a prediction .*: the predictions are for another data file")


@case("pretrain.sh: optimization.lr=[nan] (accepted) / task.mask_prob=0.2 ('not in struct', no hint)")
def _(request, tmp_path):
    data = request.getfixturevalue("wiki_data_bin")
    for override, pattern in (("optimization.lr=[nan]", "optimization.lr: nan is not a finite number"),
                              ("optimization.lr=[0.001,0]", "optimization.lr: must be greater than 0"),
                              ("task.mask_prob=0.2", r"not in struct: the config does not set this key: "
                                                     r"\+KEY=VALUE adds it")):
        refuses("training.launch", "--config", "tiny", "--data", data, "--save-dir", tmp_path / "run",
                "--from-scratch", override, "--check-only", pattern=pattern)


@case("bpe_encode --encoder-json without --vocab-bpe, no tokenizer directory: the missing option named")
def _(request, tmp_path):
    monkeypatch = request.getfixturevalue("monkeypatch")  # no default directory, whatever the checkout has
    monkeypatch.delenv("GPT2_BPE_DIR", raising=False)
    monkeypatch.setattr("fairseq_ext.tokenizer.REPO_DIR", tmp_path / "no-gpt2_bpe")
    refuses("commands.bpe_encode", "--encoder-json", request.getfixturevalue("gpt2_bpe_dir") / "encoder.json",
            "--inputs", corpus_file(tmp_path), "--outputs", tmp_path / "o.bpe",
            pattern="--encoder-json given without --vocab-bpe, and no tokenizer directory")
    assert not (tmp_path / "o.bpe").exists()


@case("pretrain.sh: --config-dir naming the .yaml file; --nproc-per-node 100: one line each")
def _(request, tmp_path):
    data = request.getfixturevalue("wiki_data_bin")
    common = ["--config", "tiny", "--data", data, "--save-dir", tmp_path / "run", "--from-scratch"]
    refuses("training.launch", *common, "--config-dir", REPO / "configs/pretraining/tiny.yaml",
            "--check-only",
            pattern=r"--config-dir .*tiny.yaml: not a directory \(give the one holding the .yaml")
    fails("pretrain.sh", *common, "--nproc-per-node", 100,
          pattern="argument --nproc-per-node: must be between 1 and 64: 100")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", list(CASES))
def test_case(name, request, tmp_path):
    CASES[name](request, tmp_path)
