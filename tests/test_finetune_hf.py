"""scripts/finetune_hf.py against the fairseq squad2 task: from the same tiny masked-LM checkpoint (fairseq's,
and its verified HF export), on the same learnable questions, with squad2_tiny.yaml's recipe on both sides
(finetune_hf.py reads it), transformers' Trainer and fairseq learn to answer unseen questions (well above
answering nothing) and reach the same dev F1 (means over 3 seeds each)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from statistics import mean

import pytest

from fairseq_ext.commands import fairseq_to_hf, finetune_hf, learnable_qa
from fairseq_ext.squad import load_squad
from tests.pretrain_fixtures import training_records
from tests.squad_fixtures import (
    TINY_WINDOWS,
    prepare_squad,
    run_squad_script,
)

SEEDS = (1, 2, 3)
TRAIN_QUESTIONS, DEV_QUESTIONS = 2000, 150  # the learnable set: dev names never seen in training
# squad2_tiny.yaml's recipe on both sides (finetune_hf.py reads its defaults from it), shortened: enough
# updates to be well above answering nothing on unseen questions, few enough for a test
UPDATES = 1200
FAIRSEQ_SETTINGS = (f"optimization.max_update={UPDATES}", "dataset.validate_interval=1000",
                    "checkpoint.save_interval=1000")
HF_SETTINGS = ("--updates", str(UPDATES), *TINY_WINDOWS)
DEV_F1_AGREEMENT = 1.5  # mean of 3 seeds each side
LEARNT = 10  # dev F1 points above answering nothing, on both sides


@pytest.fixture(scope="module")
def tiny_hf_mlm(tiny_pretrained_checkpoint, gpt2_bpe_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf-tiny-mlm") / "model"
    with contextlib.redirect_stdout(io.StringIO()):
        assert fairseq_to_hf.main(["--checkpoint", str(tiny_pretrained_checkpoint), "--gpt2-bpe",
                                   str(gpt2_bpe_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def questions(gpt2_bpe_dir, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(training questions, dev questions, fairseq data-bin of both): a small learnable set."""
    work = tmp_path_factory.mktemp("parity")
    with contextlib.redirect_stdout(io.StringIO()):
        learnable_qa.main(["--out", str(work / "set"), "--train-questions", str(TRAIN_QUESTIONS),
                           "--dev-questions", str(DEV_QUESTIONS)])
    train, dev = work / "set" / "train.json", work / "set" / "dev.json"
    return train, dev, prepare_squad(train, dev, gpt2_bpe_dir, work / "data-bin")


def fairseq_run(seed: int, checkpoint: Path, questions, work: Path) -> float:
    """Dev F1 of fairseq's validation after the last update."""
    _, _, data_bin = questions
    save_dir = work / f"fairseq-{seed}"
    run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", data_bin, "--restore",
                     checkpoint, "--save-dir", save_dir, *FAIRSEQ_SETTINGS, f"common.seed={seed}")
    return float(training_records(save_dir, "valid")[-1]["valid_f1"])


def hf_run(seed: int, model: Path, questions, work: Path) -> float:
    train, dev, _ = questions
    out = work / f"hf-{seed}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert finetune_hf.main(["--model", str(model), "--train", str(train), "--valid", str(dev), "--out",
                                 str(out), "--seed", str(seed), *HF_SETTINGS]) == 0
    return json.loads((out / "eval_results.json").read_text())["f1"]


def test_trainer_and_fairseq_fine_tune_alike(tiny_hf_mlm, tiny_pretrained_checkpoint, questions, tmp_path):
    fairseq = [fairseq_run(seed, tiny_pretrained_checkpoint, questions, tmp_path) for seed in SEEDS]
    hf = [hf_run(seed, tiny_hf_mlm, questions, tmp_path) for seed in SEEDS]
    dev = load_squad(questions[1]).examples
    baseline = 100 * sum(example.is_impossible for example in dev) / len(dev)
    print(f"\n{UPDATES} updates, squad2_tiny.yaml's recipe, seeds {SEEDS}: dev F1 (answering nothing: "
          f"{baseline:.2f}) fairseq {[round(f, 2) for f in fairseq]} mean {mean(fairseq):.2f}, transformers "
          f"{[round(f, 2) for f in hf]} mean {mean(hf):.2f}")
    assert abs(mean(fairseq) - mean(hf)) <= DEV_F1_AGREEMENT
    assert min(mean(fairseq), mean(hf)) > baseline + LEARNT
