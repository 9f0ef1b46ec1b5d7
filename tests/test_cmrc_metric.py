"""The CMRC 2018 metric on hand-made Chinese/English cases, every expected value worked out by hand from the
definition (mixed segmentation, longest common substring F1, EM without the listed punctuation)."""

import json
import subprocess
import sys

import pytest

from fairseq_ext.squad import Answer, SquadExample
from fairseq_ext.squad.cmrc_metric import cmrc_evaluate, cmrc_exact, cmrc_f1, mixed_segmentation
from tests.conftest import REPO, shared_path


@pytest.mark.parametrize("text, segments", [
    ("北京大学", ["北", "京", "大", "学"]),
    ("2008年北京奥运会", ["2008", "年", "北", "京", "奥", "运", "会"]),
    ("由Guido van Rossum设计", ["由", "guido", "van", "rossum", "设", "计"]),  # lower-cased, words
    ("《跑跑卡丁车》", ["《", "跑", "跑", "卡", "丁", "车", "》"]),  # listed punctuation: segments
    ("I can't.", ["i", "ca", "n't", "."]),  # nltk's Treebank rules
    ("  Ｘ光 ", ["ｘ", "光"]),  # stripped; no other normalisation
])
def test_mixed_segmentation(text, segments):
    assert mixed_segmentation(text) == segments


def test_removed_punctuation_does_not_end_a_run():
    assert mixed_segmentation("state-of-the-art", remove_punctuation=True) == ["stateoftheart"]
    assert mixed_segmentation("北京，上海", remove_punctuation=True) == ["北", "京", "上", "海"]


@pytest.mark.parametrize("golds, prediction, f1, exact", [
    (["北京大学"], "北京", 2 * 1 * 0.5 / 1.5, 0),  # the example: 0 under SQuAD's whitespace F1
    (["北京"], "北京。", 1.0, 1),  # 。 is listed: removed before both scores
    (["北京"], "北京.", 2 * 1 * (2 / 3) / (1 + 2 / 3), 0),  # "." is not listed: a third segment, EM fails
    (["2008年北京奥运会"], "北京奥运会", 2 * 1 * (5 / 7) / (1 + 5 / 7), 0),
    (["Guido van Rossum设计"], "van Rossum", 2 * 1 * 0.4 / 1.4, 0),
    (["甲乙丙丁"], "甲丙丁乙", 0.5, 0),  # common substring 丙丁 (2), not subsequence 甲丙丁 (3)
    (["State-of-the-art"], "stateoftheart", 1.0, 1),
    (["北京大学", "北京"], "北京", 1.0, 1),  # best gold
    (["北京"], "", 0.0, 0),
    (["上海"], "北京", 0.0, 0),
])
def test_f1_and_exact_by_hand(golds, prediction, f1, exact):
    assert cmrc_f1(golds, prediction) == pytest.approx(f1)
    assert cmrc_exact(golds, prediction) == exact


def example(qid, *answers):
    return SquadExample(qid=qid, title="", context="", question="?", answers=[Answer(a, 0) for a in answers],
                        is_impossible=not answers)


def test_evaluate_averages_over_all_questions_and_counts_skipped():
    examples = [example("a", "北京大学"), example("b", "四月"), example("c", "Python 3"), example("d")]
    predictions = {"a": "北京", "b": "四月。", "d": ""}  # c unanswered; d unanswerable, answered ""
    result = cmrc_evaluate(examples, predictions)
    f1 = 100 * (2 / 3 + 1 + 0 + 1) / 4
    exact = 100 * (0 + 1 + 0 + 1) / 4
    assert list(result) == ["AVERAGE", "F1", "EM", "TOTAL", "SKIP"]
    assert result["F1"] == pytest.approx(f1) and result["EM"] == pytest.approx(exact)
    assert result["AVERAGE"] == pytest.approx((f1 + exact) / 2)
    assert (result["TOTAL"], result["SKIP"]) == (4, 1)
    assert cmrc_evaluate([example("d")], {"d": "北京"})["F1"] == 0


def test_evaluate_script_cmrc_metric_on_the_trial_file(tmp_path):
    trial = shared_path("data", "cmrc2018", "cmrc2018-trial.json")
    data = json.loads(trial.read_text(encoding="utf-8"))
    qas = [qa for article in data["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    # first gold answer for even questions, its first character for odd ones, nothing for the last
    predictions = {qa["id"]: qa["answers"][0]["text"] if i % 2 == 0 else qa["answers"][0]["text"][:1]
                   for i, qa in enumerate(qas[:-1])}
    (tmp_path / "pred.json").write_text(json.dumps(predictions, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_squad2.py"), str(trial),
                           str(tmp_path / "pred.json"), "--metric", "cmrc",
                           "--out-file", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert list(printed) == ["AVERAGE", "F1", "EM", "TOTAL", "SKIP", "FILE"]
    assert printed["TOTAL"] == len(qas) and printed["SKIP"] == 1
    examples = [example(qa["id"], *[a["text"] for a in qa["answers"]]) for qa in qas]
    expected = cmrc_evaluate(examples, predictions)
    for key in ("AVERAGE", "F1", "EM"):
        assert printed[key] == f"{expected[key]:.3f}"  # the official script's formatting
    assert json.loads((tmp_path / "r.json").read_text()) == printed
    # even questions are exact: EM is at least their share
    assert expected["EM"] >= 100 * len(qas[:-1:2]) / len(qas)


def test_an_unlabelled_file_is_not_scored(tmp_path):
    qas = [{"id": "1", "question": "?"}]  # no "answers" field: a test file
    data = {"data": [{"title": "t", "paragraphs": [{"context": "北京大学", "qas": qas}]}]}
    (tmp_path / "test.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "pred.json").write_text(json.dumps({"1": "北京"}, ensure_ascii=False), encoding="utf-8")
    for metric in ("squad", "cmrc"):
        done = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_squad2.py"),
                               str(tmp_path / "test.json"), str(tmp_path / "pred.json"), "--metric", metric],
                              capture_output=True, text=True)
        assert done.returncode == 2 and "no gold answers" in done.stderr and done.stderr.count("\n") == 1
