"""Session fixtures of the SentencePiece / Chinese path, on the real CMRC 2018 trial file: its contexts as a
raw corpus, a SentencePiece model trained on them (scripts/train_spm.py), and the stages built on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_path

SPM_VOCAB_SIZE = 6000  # the trial's 3,300 characters at 0.9995 coverage, plus words


def run_tool(script: str, *args) -> subprocess.CompletedProcess:
    """scripts/SCRIPT (or convert/SCRIPT) with this interpreter; fails the test with its output if it
    fails."""
    path = REPO / "scripts" / script if (REPO / "scripts" / script).exists() else REPO / "convert" / script
    command = ["bash"] if script.endswith(".sh") else [sys.executable]
    done = subprocess.run([*command, str(path), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
                          timeout=900)
    if done.returncode != 0:
        pytest.fail(f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="session")
def cmrc_trial() -> Path:
    return shared_path("data", "cmrc2018", "cmrc2018-trial.json")


@pytest.fixture(scope="session")
def cmrc_corpus(cmrc_trial, tmp_path_factory) -> Path:
    """The trial's contexts as raw text: one paragraph per line, a blank line between articles."""
    data = json.loads(cmrc_trial.read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("cmrc-corpus") / "cmrc-contexts.txt"
    path.write_text("\n\n".join("\n".join(p["context"] for p in article["paragraphs"])
                                for article in data["data"]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def spm_dir(cmrc_corpus, tmp_path_factory) -> Path:
    """sentencepiece.bpe.model + dict.txt trained by scripts/train_spm.py on the trial's contexts."""
    out = tmp_path_factory.mktemp("spm") / "spm_zh"
    run_tool("train_spm.py", "--inputs", cmrc_corpus, "--out", out, "--vocab-size", SPM_VOCAB_SIZE,
             "--threads", "1", "--quiet")
    return out


@pytest.fixture(scope="session")
def cmrc_raw_dir(cmrc_corpus, tmp_path_factory) -> Path:
    """The trial's contexts split by article: 226 train, 20 valid, 10 test documents."""
    out = tmp_path_factory.mktemp("cmrc-raw")
    run_tool("split_data.py", "--inputs", cmrc_corpus, "--outdir", out, "--valid-docs", "20", "--test-docs",
             "10", "--seed", "1", "--quiet")
    return out


@pytest.fixture(scope="session")
def spm_data_bin(cmrc_raw_dir, spm_dir, tmp_path_factory) -> Path:
    """prepare_corpus.py --tokenizer SPM_DIR of the trial's contexts (empty lines kept between articles)."""
    out = tmp_path_factory.mktemp("cmrc-bin") / "data-bin"
    run_tool("prepare_corpus.py", "--raw-dir", cmrc_raw_dir, "--tokenizer", spm_dir, "--destdir", out,
             "--workers", "2", "--quiet")
    return out


# the trial's articles: the first CMRC_TRAIN_ARTICLES fine-tune, the last CMRC_VALID_ARTICLES validate
CMRC_TRAIN_ARTICLES = 40
CMRC_VALID_ARTICLES = 50
CMRC_FINETUNE_EPOCHS = 2
TINY_WINDOWS = ("--max-seq-length", "128", "--doc-stride", "32", "--max-query-length", "32")


@pytest.fixture(scope="session")
def spm_pretrained_checkpoint(spm_data_bin, tmp_path_factory) -> Path:
    """configs/pretraining/tiny.yaml trained a few updates on the SentencePiece corpus."""
    save_dir = tmp_path_factory.mktemp("spm_pretrained")
    run_tool("pretrain.sh", "--config", "tiny", "--data", spm_data_bin, "--save-dir", save_dir,
             "optimization.max_update=20")
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def cmrc_squad_files(cmrc_trial, tmp_path_factory) -> tuple[Path, Path]:
    """(train, valid) SQuAD files: slices of the trial's articles, no context in both."""
    data = json.loads(cmrc_trial.read_text(encoding="utf-8"))
    root = tmp_path_factory.mktemp("cmrc-squad")
    files = []
    for name, articles in (("train", data["data"][:CMRC_TRAIN_ARTICLES]),
                           ("valid", data["data"][-CMRC_VALID_ARTICLES:])):
        path = root / f"cmrc-{name}.json"
        path.write_text(json.dumps({**data, "data": articles}, ensure_ascii=False), encoding="utf-8")
        files.append(path)
    return tuple(files)


@pytest.fixture(scope="session")
def cmrc_squad_bin(cmrc_squad_files, spm_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmrc-squad-bin") / "data-bin"
    train, valid = cmrc_squad_files
    run_tool("prepare_squad2.py", "--train", train, "--valid", valid, "--tokenizer", spm_dir,
             "--destdir", out, *TINY_WINDOWS)
    return out


@pytest.fixture(scope="session")
def cmrc_checkpoint(cmrc_squad_bin, spm_pretrained_checkpoint, tmp_path_factory) -> Path:
    """checkpoint_best.pt of squad2_tiny fine-tuned with task.metric=cmrc (best by CMRC F1)."""
    save_dir = tmp_path_factory.mktemp("cmrc_finetuned")
    run_tool("finetune_squad2.sh", "--config", "squad2_tiny", "--data", cmrc_squad_bin, "--restore",
             spm_pretrained_checkpoint, "--save-dir", save_dir, "task.metric=cmrc",
             f"optimization.max_epoch={CMRC_FINETUNE_EPOCHS}", "optimization.max_update=1000")
    return save_dir / "checkpoint_best.pt"
