"""scripts/finetune_hf.py against the fairseq squad2 task: from the same tiny masked-LM checkpoint (fairseq's,
and its verified HF export), on the same SQuAD slices, with the same hyper-parameters and number of updates,
transformers' Trainer and fairseq reach the same dev F1 (mean of 3 seeds each, within 2 points)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from statistics import mean

import pytest

from fairseq_ext.commands import fairseq_to_hf, finetune_hf
from fairseq_ext.hf import qa
from fairseq_ext.squad import load_squad, squad_evaluate
from tests.pretrain_fixtures import training_records
from tests.squad_fixtures import TINY_WINDOWS, run_squad_script

SEEDS = (1, 2, 3)
UPDATES = 60  # 2.4 epochs of the 400 training windows, batches of 16 (squad2_tiny.yaml's hyper-parameters)
F1_AGREEMENT = 2.0


@pytest.fixture(scope="module")
def tiny_hf_mlm(tiny_pretrained_checkpoint, gpt2_bpe_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf-tiny-mlm") / "model"
    with contextlib.redirect_stdout(io.StringIO()):
        assert fairseq_to_hf.main(["--checkpoint", str(tiny_pretrained_checkpoint), "--gpt2-bpe",
                                   str(gpt2_bpe_dir), "--out", str(out)]) == 0
    return out


def f1_on(model_dir: Path, squad_file: Path) -> float:
    """F1 of a HF model on a SQuAD file, with the settings stored in it."""
    squad = load_squad(squad_file)
    tokenizer, model = qa.load_qa_model(model_dir)
    settings, _ = qa.model_settings(model, {})
    predictions = qa.answer_questions(squad.examples, tokenizer, model, settings, squad.version_2)
    return squad_evaluate(squad.examples, predictions.answers, version_2=squad.version_2)["f1"]


def fairseq_run(seed: int, data_bin: Path, checkpoint: Path, train_json: Path, gpt2_bpe_dir: Path,
                work: Path) -> tuple[float, float]:
    """(dev F1 of fairseq's validation at the last update, F1 on the training questions)."""
    save_dir = work / f"fairseq-{seed}"
    run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", data_bin, "--restore",
                     checkpoint, "--save-dir", save_dir, f"optimization.max_update={UPDATES}",
                     "optimization.max_epoch=0", "dataset.validate_interval=1000",
                     "checkpoint.save_interval=1000", f"common.seed={seed}")
    dev = float(training_records(save_dir, "valid")[-1]["valid_f1"])
    run_squad_script("predict_squad2.py", "--checkpoint", save_dir / "checkpoint_last.pt", "--data",
                     train_json, "--gpt2-bpe", gpt2_bpe_dir, "--out", work / f"fairseq-{seed}-train")
    fit = json.loads((work / f"fairseq-{seed}-train" / "eval_results.json").read_text())["f1"]
    return dev, fit


def hf_run(seed: int, model: Path, train_json: Path, valid_json: Path, work: Path) -> tuple[float, float]:
    out = work / f"hf-{seed}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert finetune_hf.main(["--model", str(model), "--train", str(train_json), "--valid",
                                 str(valid_json), "--out", str(out), "--updates", str(UPDATES), "--seed",
                                 str(seed), *TINY_WINDOWS]) == 0
    dev = json.loads((out / "eval_results.json").read_text())["f1"]
    return dev, f1_on(out, train_json)


def test_trainer_and_fairseq_reach_the_same_dev_f1(tiny_hf_mlm, tiny_pretrained_checkpoint, squad2_data_bin,
                                                   gpt2_bpe_dir, tmp_path):
    train_json, valid_json = squad2_data_bin.parent / "train.json", squad2_data_bin.parent / "valid.json"
    fairseq = [fairseq_run(seed, squad2_data_bin, tiny_pretrained_checkpoint, train_json, gpt2_bpe_dir,
                           tmp_path) for seed in SEEDS]
    hf = [hf_run(seed, tiny_hf_mlm, train_json, valid_json, tmp_path) for seed in SEEDS]
    (fairseq_dev, fairseq_fit), (hf_dev, hf_fit) = ([mean(column) for column in zip(*runs)]
                                                    for runs in (fairseq, hf))
    print(f"\n{UPDATES} updates, seeds {SEEDS}: dev F1 fairseq {[round(d, 2) for d, _ in fairseq]} mean "
          f"{fairseq_dev:.2f}, transformers {[round(d, 2) for d, _ in hf]} mean {hf_dev:.2f}; F1 on the "
          f"training questions fairseq {fairseq_fit:.2f}, transformers {hf_fit:.2f}")
    assert abs(fairseq_dev - hf_dev) <= F1_AGREEMENT
