"""Every question of an evaluation file is predicted and scored, even when its answer_start is -1 or points
elsewhere (official dev files have such answers; the official SQuAD v2 and CMRC 2018 scripts read answer
texts only): predict_squad2.py, evaluate_hf.py and prepare_squad2.py's validation split. A training file
keeps its rule: repair, else skip and count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairseq_ext.commands import evaluate_hf
from fairseq_ext.squad import load_squad
from fairseq_ext.squad.data import ANSWER_SEARCH_RADIUS
from fairseq_ext.squad.format import read_metadata
from fairseq_ext.squad.settings import TINY
from tests.spm_fixtures import run_tool
from tests.squad_fixtures import TINY_WINDOWS, VALID_ARTICLES, run_squad_script, squad_articles
from tests.test_evaluate_hf import export_squad_model

RESULT_FILES = ("predictions.json", "null_odds.json", "nbest_predictions.json", "eval_results.json")


def unlocate(source: Path, dest: Path) -> tuple[Path, int]:
    """A copy of ``source`` where every answer of 2 answerable questions in 3 gets an answer_start that
    points nowhere near its text: -1 (CMRC 2018 dev's way; only for texts first occurring beyond the
    search radius, nearer ones would be repaired) or past the end of the context. Returns it and how many
    questions were changed."""
    data = json.loads(source.read_text(encoding="utf-8"))
    broken = 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                if not qa.get("answers"):
                    continue
                far_from_start = all(context.find(answer["text"]) > ANSWER_SEARCH_RADIUS + len(answer["text"])
                                     for answer in qa["answers"])
                if broken % 2 == 0 and far_from_start:
                    start = -1
                elif broken % 2 == 1:
                    start = len(context) + ANSWER_SEARCH_RADIUS + 1
                else:
                    continue
                for answer in qa["answers"]:
                    answer["answer_start"] = start
                broken += 1
    dest.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return dest, broken


def read(directory: Path, name: str):
    return json.loads((directory / name).read_text(encoding="utf-8"))


def scores(directory: Path) -> dict:
    """eval_results.json without its "data" entry (the scored file's name and sha256: not the same file)."""
    results = read(directory, "eval_results.json")
    assert results.pop("data")["file"].endswith(".json")
    return results


@pytest.fixture(scope="module")
def squad_files(tmp_path_factory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("unlocated")
    original = squad_articles(VALID_ARTICLES, root / "dev.json")
    broken, count = unlocate(original, root / "dev-unlocated.json")
    return original, broken, count


def test_training_skips_evaluation_keeps_and_counts(squad_files):
    original, broken, count = squad_files
    total = len(load_squad(original).examples)
    training = load_squad(broken)
    assert len(training.skipped) == count and len(training.examples) == total - count
    evaluation = load_squad(broken, training=False)
    assert len(evaluation.examples) == total and evaluation.skipped == []
    assert len({qid for qid, _ in evaluation.unlocated}) == count
    assert "answers not located (predicted and scored by their text; e.g. " in evaluation.summary()
    assert sum(not answer.located for example in evaluation.examples for answer in example.answers) \
        == len(evaluation.unlocated)


def test_predict_squad2_and_evaluate_hf_answer_and_score_every_question(squad_files, tiny_squad_checkpoint,
                                                                        gpt2_bpe_dir, tmp_path):
    """Positions play no part in prediction or in the official metric: the broken file gives exactly the
    files of the intact one, on both sides, with every question in the totals."""
    original, broken, count = squad_files
    outputs = {}
    for name, data in (("original", original), ("unlocated", broken)):
        outputs[name] = tmp_path / name
        done = run_squad_script("predict_squad2.py", "--checkpoint", tiny_squad_checkpoint, "--data", data,
                                "--gpt2-bpe", gpt2_bpe_dir, "--out", outputs[name], "--batch-size", "64")
    assert f"{len(load_squad(broken, training=False).unlocated)} answers not located" in done.stdout
    for name in RESULT_FILES[:-1]:
        assert read(outputs["unlocated"], name) == read(outputs["original"], name), name
    assert scores(outputs["unlocated"]) == scores(outputs["original"])
    results = read(outputs["unlocated"], "eval_results.json")
    assert results["total"] == 262 and results["HasAns_total"] == 112 and results["NoAns_total"] == 150
    assert len(read(outputs["unlocated"], "predictions.json")) == 262

    export = export_squad_model(tiny_squad_checkpoint, gpt2_bpe_dir, tmp_path / "hf")
    hf_out = tmp_path / "hf-eval"
    assert evaluate_hf.main(["--model", str(export), "--data", str(broken), "--out", str(hf_out)]) == 0
    hf_results = read(hf_out, "eval_results.json")
    assert hf_results["total"] == 262 and len(read(hf_out, "predictions.json")) == 262
    assert hf_results["f1"] == pytest.approx(results["f1"], abs=0.1)


def test_validation_split_keeps_every_question(squad_files, gpt2_bpe_dir, tmp_path):
    original, broken, count = squad_files
    destdir = tmp_path / "bin"
    run_squad_script("prepare_squad2.py", "--train", original, "--valid", broken, "--gpt2-bpe", gpt2_bpe_dir,
                     "--destdir", destdir, *TINY_WINDOWS)
    splits = read_metadata(destdir)["splits"]
    assert splits["valid"]["questions"] == 262 and splits["valid"]["skipped"] == 0
    assert len({entry["id"] for entry in splits["valid"]["unlocated_answers"]}) == count
    # the squad2 task scores the questions of valid.json against these features: they must match
    from fairseq_ext.plugin.tasks.squad2 import SquadV2Config, SquadV2Task

    task = SquadV2Task.setup_task(SquadV2Config(data=str(destdir), max_positions=128, **TINY.windows()))
    dataset = task.load_dataset("valid")
    assert len(dataset) == 262


def test_cmrc_answers_at_minus_one_are_scored(cmrc_checkpoint, cmrc_squad_bin, spm_dir, tmp_path):
    """CMRC 2018 dev files write answer_start -1: predicted and scored with the CMRC metric all the same."""
    original = cmrc_squad_bin / "valid.json"
    data = json.loads(original.read_text(encoding="utf-8"))
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                for answer in qa["answers"]:
                    answer["answer_start"] = -1
    broken = tmp_path / "cmrc-dev.json"
    broken.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    outputs = {}
    for name, path in (("original", original), ("unlocated", broken)):
        outputs[name] = tmp_path / name
        run_tool("predict_squad2.py", "--checkpoint", cmrc_checkpoint, "--data", path, "--tokenizer", spm_dir,
                 "--out", outputs[name], "--metric", "cmrc", "--batch-size", "64")
    results = scores(outputs["unlocated"])
    assert results == scores(outputs["original"])
    assert results["TOTAL"] == len(load_squad(original).examples) and results["SKIP"] == 0
