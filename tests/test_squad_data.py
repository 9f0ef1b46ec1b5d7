"""Reading SQuAD JSON: the shared SQuAD 2.0 data, v1.1 files, answer_start repair and one-line errors."""

import copy
import json
from pathlib import Path

import pytest

from fairseq_ext.errors import UserInputError
from fairseq_ext.squad import load_squad
from fairseq_ext.squad.data import ANSWER_SEARCH_RADIUS
from tests.conftest import shared_path

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def dev_path():
    return shared_path("data", "squad2", "squad2-dev-part.json")


@pytest.fixture(scope="module")
def dev_json(dev_path):
    return json.loads(dev_path.read_text(encoding="utf-8"))


def write(tmp_path, dataset, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(dataset), encoding="utf-8")
    return path


def one_paragraph(dev_json):
    """The first shared paragraph as a small SQuAD 2.0 file (answerable and unanswerable questions)."""
    article = dev_json["data"][0]
    return {"version": "v2.0", "data": [{"title": article["title"],
                                         "paragraphs": [copy.deepcopy(article["paragraphs"][0])]}]}


def test_shared_squad2_dev_is_read_completely(dev_path, dev_json):
    data = load_squad(dev_path)
    qas = [(article["title"], paragraph["context"], qa) for article in dev_json["data"]
           for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    assert data.version_2 and data.repaired == 0 and data.skipped == []
    assert [e.qid for e in data.examples] == [qa["id"] for _, _, qa in qas]
    for example, (title, context, qa) in zip(data.examples, qas):
        assert (example.title, example.context, example.question) == (title, context, qa["question"])
        assert example.is_impossible == qa.get("is_impossible", False) == (not qa["answers"])
        assert [(a.text, a.start) for a in example.answers] == \
            [(a["text"], a["answer_start"]) for a in qa["answers"]]
        for answer in example.answers:
            assert context[answer.start:answer.start + len(answer.text)] == answer.text
    assert "6078 questions (3168 unanswerable), SQuAD 2.0, 0 answer_start repaired, 0 questions skipped" \
        == data.summary()


def test_squad11_file_is_version_1(tmp_path, dev_json):
    dataset = one_paragraph(dev_json)
    dataset["version"] = "1.1"
    for qa in dataset["data"][0]["paragraphs"][0]["qas"]:
        del qa["is_impossible"]
    dataset["data"][0]["paragraphs"][0]["qas"] = [qa for qa in dataset["data"][0]["paragraphs"][0]["qas"]
                                                  if qa["answers"]]
    data = load_squad(write(tmp_path, dataset))
    assert not data.version_2 and data.examples and not any(e.is_impossible for e in data.examples)


def test_misaligned_answer_start_is_repaired_or_the_question_skipped(tmp_path, dev_json):
    dataset = one_paragraph(dev_json)
    paragraph = dataset["data"][0]["paragraphs"][0]
    answerable = [qa for qa in paragraph["qas"] if qa["answers"]]
    shifted, far, absent = answerable[0], answerable[1], answerable[2]
    true_start = shifted["answers"][0]["answer_start"]
    shifted["answers"][0]["answer_start"] += 3
    far["answers"][0]["answer_start"] = len(paragraph["context"]) + ANSWER_SEARCH_RADIUS + 1
    absent["answers"][0]["text"] = "words that are nowhere in the paragraph"
    path = write(tmp_path, dataset)

    data = load_squad(path)
    by_id = {e.qid: e for e in data.examples}
    assert data.repaired == 1 and by_id[shifted["id"]].answers[0].start == true_start
    assert [qid for qid, _ in data.skipped] == [far["id"], absent["id"]]
    assert "not found near answer_start" in data.skipped[1][1]
    assert len(data.examples) == len(paragraph["qas"]) - 2
    assert "1 answer_start repaired, 2 questions skipped (e.g. " + far["id"] in data.summary()

    # for the metric only texts matter: nothing is repaired or skipped
    unaligned = load_squad(path, align_answers=False)
    assert unaligned.repaired == 0 and unaligned.skipped == []
    assert len(unaligned.examples) == len(paragraph["qas"])


def test_malformed_json_is_one_clear_error():
    path = FIXTURES / "squad_truncated.json"
    with pytest.raises(UserInputError, match=f"{path}: not valid JSON: .*line 1"):
        load_squad(path)


def test_missing_field_names_the_question():
    with pytest.raises(UserInputError, match=r"article 0 \('Fixture'\) paragraph 0 question no-start "
                                             r"answer 0: missing field 'answer_start'"):
        load_squad(FIXTURES / "squad_missing_answer_start.json")


def qas(dataset):
    return dataset["data"][0]["paragraphs"][0]["qas"]


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("data"), "not a SQuAD file"),
    (lambda d: d["data"][0].pop("paragraphs"), r"article 0 \('Normans'\): missing field 'paragraphs'"),
    (lambda d: d["data"][0]["paragraphs"][0].pop("context"), "paragraph 0: missing field 'context'"),
    (lambda d: qas(d)[0].pop("id"), "paragraph 0 question 0: missing field 'id'"),
    (lambda d: qas(d)[1].pop("question"), "question .+: missing field 'question'"),
    # no "answers" field marks a test file (scripts/to_squad.py): one lacking it among others is an error
    (lambda d: qas(d)[0].pop("answers"), r"question \S+ has no 'answers' field but others have one"),
    (lambda d: qas(d)[0]["answers"][0].update(answer_start="159"),
     "answer 0: field 'answer_start' should be int, got str"),
    (lambda d: qas(d)[0].update(is_impossible=True),
     "is_impossible=True but 4 answers given"),
    (lambda d: qas(d)[1].update(id=qas(d)[0]["id"]),
     "duplicate question id"),
    (lambda d: d["data"][0]["paragraphs"].append("not a paragraph"), "paragraph 1: expected a JSON object"),
])
def test_missing_or_wrong_fields_are_named(tmp_path, dev_json, damage, message):
    dataset = one_paragraph(dev_json)
    damage(dataset)
    with pytest.raises(UserInputError, match=message):
        load_squad(write(tmp_path, dataset))


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="SQuAD file not found"):
        load_squad(tmp_path / "absent.json")
