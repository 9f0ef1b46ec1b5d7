"""The SentencePiece / Chinese path end to end on the real CMRC 2018 trial file: a tiny model pretrained on
an spm corpus, fine-tuned with task.metric=cmrc (validation and checkpoint_best by the CMRC metric),
predict_squad2.py --metric cmrc, unlabelled test files (--csv), and a tokenizer mismatch refused."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint
from fairseq_ext.errors import UserInputError
from fairseq_ext.squad import load_squad
from fairseq_ext.squad.cmrc_metric import cmrc_evaluate
from tests.conftest import REPO
from tests.pretrain_fixtures import load_launcher, training_records
from tests.spm_fixtures import CMRC_FINETUNE_EPOCHS, SPM_VOCAB_SIZE, run_tool


def epoch_records(save_dir, kind: str) -> list[dict]:
    return list({record["epoch"]: record for record in training_records(save_dir, kind)}.values())


def test_tiny_pretraining_on_a_sentencepiece_corpus(spm_pretrained_checkpoint):
    info = checkpoint_info(load_checkpoint(spm_pretrained_checkpoint))
    # fairseq's 4 specials + the pieces after the model's 3 + <mask>
    assert info.embedding_rows == SPM_VOCAB_SIZE + 2 and info.num_updates == 20
    valid = training_records(spm_pretrained_checkpoint.parent, "valid")
    assert valid and all(float(record["valid_loss"]) > 0 for record in valid)


def test_finetune_validates_and_keeps_the_best_by_the_cmrc_metric(cmrc_checkpoint, cmrc_squad_bin, spm_dir,
                                                                   tmp_path):
    state = load_checkpoint(cmrc_checkpoint)
    assert state["cfg"]["task"]["metric"] == "cmrc"
    valid = epoch_records(cmrc_checkpoint.parent, "valid")
    assert [record["epoch"] for record in valid] == list(range(1, CMRC_FINETUNE_EPOCHS + 1))
    f1s = [float(record["valid_f1"]) for record in valid]
    best_record = [record for record in valid if float(record["valid_f1"]) == max(f1s)][-1]
    assert checkpoint_info(state).num_updates == int(best_record["valid_num_updates"])

    # predict_squad2.py --metric cmrc reproduces what validation logged, in the official script's keys
    out = tmp_path / "pred"
    run_tool("predict_squad2.py", "--checkpoint", cmrc_checkpoint, "--data", cmrc_squad_bin / "valid.json",
             "--tokenizer", spm_dir, "--out", out, "--metric", "cmrc", "--batch-size", "64")
    results = json.loads((out / "eval_results.json").read_text())
    print(f"CMRC trial slice, tiny model: {results} (validation logged EM {best_record['valid_em']} "
          f"F1 {best_record['valid_f1']})")
    assert list(results)[:5] == ["AVERAGE", "F1", "EM", "TOTAL", "SKIP"]  # then the baseline, the scored file
    assert results["F1"] == pytest.approx(float(best_record["valid_f1"]), abs=1e-3)
    assert results["EM"] == pytest.approx(float(best_record["valid_em"]), abs=1e-3)
    predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    examples = load_squad(cmrc_squad_bin / "valid.json").examples
    assert results["TOTAL"] == len(examples) == len(predictions) and results["SKIP"] == 0
    assert all(predictions[example.qid] for example in examples)  # SQuAD 1.1-style data: always a span
    assert cmrc_evaluate(examples, predictions)["F1"] == pytest.approx(results["F1"])


def test_unlabelled_test_file_is_answered_not_scored(cmrc_checkpoint, cmrc_squad_bin, spm_dir, tmp_path):
    data = json.loads((cmrc_squad_bin / "valid.json").read_text(encoding="utf-8"))
    for article in data["data"][:5]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                del qa["answers"]
    data["data"] = data["data"][:5]
    test_file = tmp_path / "test.json"
    test_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    out, answers_csv = tmp_path / "pred", tmp_path / "answers.csv"
    done = run_tool("predict_squad2.py", "--checkpoint", cmrc_checkpoint, "--data", test_file, "--tokenizer",
                    spm_dir, "--out", out, "--metric", "cmrc", "--csv", answers_csv)
    assert "has no answers: predictions written, nothing scored" in done.stdout
    assert not (out / "eval_results.json").exists()
    predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    with open(answers_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    qids = [qa["id"] for article in data["data"] for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]]
    assert rows[0] == ["ID", "Answer"] and rows[1:] == [[qid, predictions[qid]] for qid in qids]


def test_another_tokenizer_is_refused(cmrc_checkpoint, gpt2_bpe_dir, cmrc_squad_bin, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "predict_squad2.py"), "--checkpoint",
                           str(cmrc_checkpoint), "--data", str(cmrc_squad_bin / "valid.json"), "--gpt2-bpe",
                           str(gpt2_bpe_dir), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "was made with the sentencepiece tokenizer" in done.stderr


def test_xlmr_base_continue_config_passes_the_checks(spm_pretrained_checkpoint, spm_data_bin, tmp_path,
                                                     capsys):
    """configs/pretraining/xlmr_base_continue.yaml composes against fairseq's schema, with the same guard
    rails as roberta_base_continue.yaml, on a SentencePiece data-bin and a checkpoint of its dictionary."""
    launcher = load_launcher()
    # the 512-position config on the tiny checkpoint (128 positions): the architecture check refuses it unless
    # told to keep the checkpoint's positions
    common = ["--config", "xlmr_base_continue", "--data", str(spm_data_bin), "--save-dir", str(tmp_path),
              "--restore", str(spm_pretrained_checkpoint), "--check-only", "model.max_positions=128",
              "task.tokens_per_sample=128"]
    assert launcher.main(common) == 0
    assert "update 0 of 12500" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="is at 20 updates and optimization.max_update=12"):
        launcher.main([*common, "checkpoint.reset_optimizer=false", "optimization.max_update=12"])
