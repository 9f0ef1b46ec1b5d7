"""Other QA layouts to SQuAD's (scripts/to_squad.py): CMRC 2018's original layout and HW7's, built from the
real CMRC 2018 trial file, and unlabelled test files."""

import json
import subprocess
import sys

import pytest

from fairseq_ext.errors import UserInputError
from fairseq_ext.squad import load_squad
from fairseq_ext.squad.layouts import convert
from tests.conftest import REPO, shared_path


@pytest.fixture(scope="module")
def trial():
    return json.loads(shared_path("data", "cmrc2018", "cmrc2018-trial.json").read_text(encoding="utf-8"))


def paragraphs_of(trial):
    return [paragraph for article in trial["data"] for paragraph in article["paragraphs"]]


def to_squad(tmp_path, layout, dataset):
    source, target = tmp_path / f"{layout}.json", tmp_path / f"{layout}-squad.json"
    source.write_text(json.dumps(dataset, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "to_squad.py"), "--format", layout,
                           str(source), str(target)], capture_output=True, text=True, timeout=120)
    return done, target


def test_cmrc_original_layout(tmp_path, trial):
    original = [{"context_id": p["id"], "context_text": p["context"], "title": "t",
                 "qas": [{"query_id": qa["id"], "query_text": qa["question"],
                          "answers": [a["text"] for a in qa["answers"]]} for qa in p["qas"]]}
                for p in paragraphs_of(trial)]
    first = original[0]["qas"]
    first[0]["answers"].append("不在文中的答案")  # kept with answer_start -1
    first[1]["answers"] = ["也不在文中"]  # kept: scored by its text, skipped for training
    first[2]["answers"] = []  # nothing to score against: dropped
    done, target = to_squad(tmp_path, "cmrc", original)
    assert done.returncode == 0, done.stderr
    assert (f"1001 questions written (0 without answers: predicted, not scored), 2 answers not found in "
            f"their context (kept with answer_start -1: scored by their text, their questions skipped for "
            f"training; e.g. {first[0]['query_id']}: '不在文中的答案'), 1 questions with an empty answer "
            "list dropped") in done.stderr
    by_id = {qa["id"]: qa for p in paragraphs_of(trial) for qa in p["qas"]}
    golds = {qid: [a["text"] for a in qa["answers"]] for qid, qa in by_id.items()}
    golds[first[0]["query_id"]].append("不在文中的答案")
    golds[first[1]["query_id"]] = ["也不在文中"]
    del golds[first[2]["query_id"]]
    evaluated = load_squad(target, training=False)  # what prediction and the metric read
    assert evaluated.repaired == 0 and len(evaluated.unlocated) == 2 and len(evaluated.examples) == 1001
    assert {example.qid: [a.text for a in example.answers] for example in evaluated.examples} == golds
    for example in evaluated.examples:  # each located at its first occurrence
        for answer in example.answers:
            assert answer.start == example.context.find(answer.text) or not answer.located
    trained = load_squad(target)  # a training file: the questions with an unlocated answer skipped
    assert [qid for qid, _ in trained.skipped] == [first[0]["query_id"], first[1]["query_id"]]
    assert len(trained.examples) == 999


def test_hw7_layout_keeps_question_order_and_reads_test_files(tmp_path, trial):
    paragraphs = [p["context"] for p in paragraphs_of(trial)[:3]]
    questions, index = [], 0
    for qa_index in range(3):
        for paragraph_id in (2, 0, 1):  # not grouped by paragraph: the order must survive
            qa = paragraphs_of(trial)[paragraph_id]["qas"][qa_index]
            answer = qa["answers"][0]
            questions.append({"id": index, "paragraph_id": paragraph_id, "question_text": qa["question"],
                              "answer_text": answer["text"], "answer_start": answer["answer_start"],
                              "answer_end": answer["answer_start"] + len(answer["text"]) - 1})
            index += 1
    starts = [question["answer_start"] for question in questions]
    questions[0]["answer_start"] += 2  # a wrong start, the end right: located from the end by to_squad
    questions[1]["answer_start"] += 2  # both misaligned: located near them by to_squad (hw7_answer_start)
    questions[1]["answer_end"] += 2
    done, target = to_squad(tmp_path, "hw7", {"questions": questions, "paragraphs": paragraphs})
    assert done.returncode == 0, done.stderr
    data = load_squad(target)
    assert [e.qid for e in data.examples] == [str(i) for i in range(9)]
    assert data.labelled and data.repaired == 0  # nothing left for the reader to repair
    for example, question, start in zip(data.examples, questions, starts):
        assert example.context == paragraphs[question["paragraph_id"]]
        assert (example.answers[0].text, example.answers[0].start) == (question["answer_text"], start)

    for question in questions:
        question.update(answer_text=None, answer_start=None, answer_end=None)
    done, target = to_squad(tmp_path, "hw7", {"questions": questions, "paragraphs": paragraphs})
    assert done.returncode == 0 and "9 without answers" in done.stderr
    test = load_squad(target)
    assert not test.labelled and [e.qid for e in test.examples] == [str(i) for i in range(9)]
    assert "no answers: predicted, not scored" in test.summary()


def test_layout_errors_are_one_line(tmp_path, trial):
    with pytest.raises(UserInputError, match="try --format cmrc"):
        convert([{"context_text": "x"}], "squad")
    with pytest.raises(UserInputError, match="paragraph_id 5 is not one of the 1 paragraphs"):
        convert({"questions": [{"id": 1, "paragraph_id": 5, "question_text": "?"}], "paragraphs": ["x"]},
                "hw7")
    mixed = {"data": [{"title": "t", "paragraphs": [{"context": "ab", "qas": [
        {"id": "1", "question": "?", "answers": [{"text": "a", "answer_start": 0}]},
        {"id": "2", "question": "?"}]}]}]}
    with pytest.raises(UserInputError, match="question 2 has no 'answers' field but others have one"):
        convert(mixed, "squad")
    done, _ = to_squad(tmp_path, "cmrc", {"not": "a list"})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
