"""Session fixtures for the squad tests (and the stages built on them): slices of the shared SQuAD 2.0
dev part, their prepared features, and a tiny roberta_span_qa checkpoint fine-tuned from the tiny
pretrained one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_ext.squad.settings import TINY
from tests.conftest import REPO, shared_path

# the windows of configs/finetuning/squad2_tiny.yaml (the tiny model has 128 positions)
TINY_WINDOWS = TINY.window_arguments()
TRAIN_ARTICLES = ("Normans",)  # 208 questions, 112 unanswerable
VALID_ARTICLES = ("Harvard_University",)  # 262 questions, 150 unanswerable
TINY_FINETUNE_EPOCHS = 3


def squad_articles(titles, path: Path) -> Path:
    """A SQuAD 2.0 file holding the given articles of the shared dev part."""
    squad = json.loads(shared_path("data", "squad2", "squad2-dev-part.json").read_text())
    articles = [article for article in squad["data"] if article["title"] in titles]
    assert len(articles) == len(titles), f"articles {titles} not all in the shared SQuAD file"
    path.write_text(json.dumps({"version": squad["version"], "data": articles}))
    return path


def run_squad_script(script: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    """scripts/SCRIPT ARGS with this interpreter (a .sh script with bash, PYTHON=this interpreter).
    Tiny models run fastest on one thread, and a busy machine makes more threads much slower."""
    command = ["bash"] if script.endswith(".sh") else [sys.executable]
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*command, str(REPO / "scripts" / script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=600)
    if check and done.returncode != 0:
        pytest.fail(f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def prepare_squad(train: Path, valid: Path, gpt2_bpe_dir: Path, destdir: Path) -> Path:
    run_squad_script("prepare_squad2.py", "--train", train, "--valid", valid, "--gpt2-bpe", gpt2_bpe_dir,
                     "--destdir", destdir, *TINY_WINDOWS)
    return destdir


@pytest.fixture(scope="session")
def squad2_data_bin(gpt2_bpe_dir, tmp_path_factory) -> Path:
    """prepare_squad2.py output for squad2_tiny.yaml: train = TRAIN_ARTICLES, valid = VALID_ARTICLES
    (valid.json in it is the validation SQuAD file)."""
    root = tmp_path_factory.mktemp("squad2")
    return prepare_squad(squad_articles(TRAIN_ARTICLES, root / "train.json"),
                         squad_articles(VALID_ARTICLES, root / "valid.json"), gpt2_bpe_dir, root / "data-bin")


@pytest.fixture(scope="session")
def tiny_squad_checkpoint(squad2_data_bin, tiny_pretrained_checkpoint, tmp_path_factory) -> Path:
    """checkpoint_best.pt (by validation F1) of roberta_span_qa_tiny fine-tuned for TINY_FINETUNE_EPOCHS
    epochs on TRAIN_ARTICLES from tiny_pretrained_checkpoint; its save dir holds train_log.json."""
    save_dir = tmp_path_factory.mktemp("tiny_squad")
    run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", squad2_data_bin,
                     "--restore", tiny_pretrained_checkpoint, "--save-dir", save_dir,
                     f"optimization.max_epoch={TINY_FINETUNE_EPOCHS}")
    return save_dir / "checkpoint_best.pt"
