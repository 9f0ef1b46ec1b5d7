"""SQuAD v2 fine-tuning end to end: scripts/finetune_squad2.sh from the tiny masked-LM checkpoint,
validation EM/F1 and best-checkpoint selection, scripts/predict_squad2.py on the fine-tuned checkpoint,
and an overfit run that must learn its 32 questions."""

from __future__ import annotations

import json

import pytest

from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint
from tests.pretrain_fixtures import training_records
from tests.squad_fixtures import (
    TINY_FINETUNE_EPOCHS,
    VALID_ARTICLES,
    prepare_squad,
    run_squad_script,
    squad_articles,
)

OVERFIT_QUESTIONS = 16  # answerable and as many unanswerable
# what makes a 2-layer, 64-wide model learn 75 windows in seconds: whole-set batches, a high learning rate,
# no dropout, validation only at the end
OVERFIT_SETTINGS = ("dataset.batch_size=32", "optimization.lr=[0.01]", "optimization.max_update=300",
                    "optimization.max_epoch=0", "model.dropout=0", "model.attention_dropout=0",
                    "dataset.validate_interval=1000", "checkpoint.save_interval=1000",
                    "common.log_interval=100")


def epoch_records(save_dir, kind: str) -> list[dict]:
    """One record per epoch: fairseq's progress_bar adds a log_file handler per epoch, so epoch N's records
    appear N times in train_log.json."""
    return list({record["epoch"]: record for record in training_records(save_dir, kind)}.values())


def predict(checkpoint, data, gpt2_bpe_dir, out) -> dict:
    run_squad_script("predict_squad2.py", "--checkpoint", checkpoint, "--data", data,
                     "--gpt2-bpe", gpt2_bpe_dir, "--out", out, "--batch-size", "64")
    return json.loads((out / "eval_results.json").read_text())


def test_finetune_from_masked_lm_and_evaluate_on_other_articles(tiny_squad_checkpoint,
                                                                 tiny_pretrained_checkpoint, squad2_data_bin,
                                                                 gpt2_bpe_dir, tmp_path):
    save_dir = tiny_squad_checkpoint.parent
    valid = epoch_records(save_dir, "valid")
    assert [record["epoch"] for record in valid] == list(range(1, TINY_FINETUNE_EPOCHS + 1))
    for record in valid:
        print(f"epoch {record['epoch']} on {', '.join(VALID_ARTICLES)}: EM {record['valid_em']} "
              f"F1 {record['valid_f1']}")

    # restored from the masked-LM checkpoint with every reset: updates count from 0, and the best
    # checkpoint is the last epoch with the highest validation F1 (fairseq keeps ties' latest)
    pretrained = checkpoint_info(load_checkpoint(tiny_pretrained_checkpoint))
    best_state = load_checkpoint(tiny_squad_checkpoint)
    best = checkpoint_info(best_state)
    assert pretrained.num_updates > 0 and best.task_name == "squad2"
    assert best.embedding_rows == pretrained.embedding_rows == 50265
    f1s = [float(record["valid_f1"]) for record in valid]
    best_record = [record for record in valid if float(record["valid_f1"]) == max(f1s)][-1]
    assert best.num_updates == int(best_record["valid_num_updates"])
    assert best_state["extra_state"]["best"] == pytest.approx(max(f1s), abs=1e-3)
    assert valid[-1]["valid_num_updates"] == epoch_records(save_dir, "train")[-1]["train_num_updates"]

    # reload for prediction: the official metric over the validation file equals what validation logged
    results = predict(tiny_squad_checkpoint, squad2_data_bin / "valid.json", gpt2_bpe_dir, tmp_path / "pred")
    print(f"predict_squad2.py with checkpoint_best.pt: {json.dumps(results)}")
    assert results["total"] == 262 and results["HasAns_total"] == 112 and results["NoAns_total"] == 150
    assert results["exact"] == pytest.approx(float(best_record["valid_em"]), abs=1e-3)
    assert results["f1"] == pytest.approx(float(best_record["valid_f1"]), abs=1e-3)
    predictions = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    null_odds = json.loads((tmp_path / "pred" / "null_odds.json").read_text())
    assert len(predictions) == len(null_odds) == 262
    assert all((answer == "") == (null_odds[qid] > 0) for qid, answer in predictions.items())


@pytest.mark.slow
def test_overfit_32_questions(tiny_pretrained_checkpoint, gpt2_bpe_dir, tmp_path):
    squad = json.loads(squad_articles(VALID_ARTICLES, tmp_path / "article.json").read_text())
    kept = {True: 0, False: 0}
    for paragraph in squad["data"][0]["paragraphs"]:
        questions = []
        for question in paragraph["qas"]:
            if kept[question["is_impossible"]] < OVERFIT_QUESTIONS:
                kept[question["is_impossible"]] += 1
                questions.append(question)
        paragraph["qas"] = questions
    squad["data"][0]["paragraphs"] = [p for p in squad["data"][0]["paragraphs"] if p["qas"]]
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps(squad))
    assert kept == {True: OVERFIT_QUESTIONS, False: OVERFIT_QUESTIONS}

    data_bin = prepare_squad(questions, questions, gpt2_bpe_dir, tmp_path / "data-bin")
    save_dir = tmp_path / "checkpoints"
    run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", data_bin,
                     "--restore", tiny_pretrained_checkpoint, "--save-dir", save_dir, *OVERFIT_SETTINGS)
    logged = epoch_records(save_dir, "valid")[-1]
    results = predict(save_dir / "checkpoint_last.pt", questions, gpt2_bpe_dir, tmp_path / "pred")
    print(f"overfit on {2 * OVERFIT_QUESTIONS} questions: {json.dumps(results)}")
    assert results["total"] == 2 * OVERFIT_QUESTIONS
    assert results["exact"] >= 95
    assert results["exact"] == pytest.approx(float(logged["valid_em"]), abs=1e-3)
