"""Session fixtures of the SentencePiece / Chinese path, on the real CMRC 2018 trial file: its contexts as a
raw corpus, a SentencePiece model trained on them (scripts/train_spm.py), and the stages built on it."""

from __future__ import annotations

import json
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
                          env={**__import__("os").environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
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
