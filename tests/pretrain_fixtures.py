"""Session fixtures for the pretrain tests (and the stages built on them)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PRETRAIN_SH = REPO / "scripts" / "pretrain.sh"
TINY_PRETRAIN_UPDATES = 20


def pretrain_command(*args) -> list[str]:
    """scripts/pretrain.sh ARGS (run with this test interpreter, see pretrain_env)."""
    return ["bash", str(PRETRAIN_SH), *map(str, args)]


def pretrain_env() -> dict:
    return {**os.environ, "PYTHON": sys.executable}


def run_pretrain(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """scripts/pretrain.sh ARGS to completion, output captured (fairseq logs to stdout)."""
    return subprocess.run(pretrain_command(*args), capture_output=True, text=True, env=pretrain_env(),
                          timeout=timeout)


def load_launcher():
    """scripts/launch_train.py as a module: its main(argv) runs the checks in-process (with --check-only
    nothing trains), raising UserInputError with the one-line message."""
    spec = importlib.util.spec_from_file_location("launch_train", REPO / "scripts" / "launch_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_records(save_dir: Path, kind: str = "train_inner") -> list[dict]:
    """The JSON records of one kind from the run's common.log_file (every run in save_dir, in order):
    'train_inner' (every log_interval updates), 'valid' or 'train' (end of epoch)."""
    records = []
    for line in (Path(save_dir) / "train_log.json").read_text().splitlines():
        if not line.startswith('{"'):  # the log file also holds the config and the model's repr
            continue
        record = json.loads(line)
        found = "valid" if "valid_loss" in record else "train" if "train_loss" in record else "train_inner"
        if found == kind:
            records.append(record)
    return records


@pytest.fixture(scope="session")
def tiny_pretrained_checkpoint(wiki_data_bin, tmp_path_factory) -> Path:
    """A tiny RoBERTa (configs/pretraining/tiny.yaml) trained from random init for a few updates on the
    wiki paragraphs with the real GPT-2 dictionary: 50,265 embedding rows, optimizer state included."""
    save_dir = tmp_path_factory.mktemp("tiny_pretrained")
    result = run_pretrain("--config", "tiny", "--data", wiki_data_bin, "--save-dir", save_dir,
                          f"optimization.max_update={TINY_PRETRAIN_UPDATES}")
    assert result.returncode == 0, f"tiny pretraining failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return save_dir / "checkpoint_last.pt"
