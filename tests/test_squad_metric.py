"""The official SQuAD metric semantics (evaluate-v2.0.py, evaluate-v1.1.py) on hand-checked cases, and
scripts/evaluate_squad2.py with the official script's arguments and output."""

import collections
import json
import subprocess
import sys

import pytest

from fairseq_ext.commands import evaluate_squad2
from fairseq_ext.errors import UserInputError
from fairseq_ext.squad import (
    Answer,
    SquadExample,
    compute_exact,
    compute_f1,
    load_squad,
    normalize_answer,
    squad_evaluate,
)
from tests.conftest import REPO, shared_path

V2_KEYS = ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
           "NoAns_total"]
BEST_KEYS = ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]


@pytest.mark.parametrize("text, normalized", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("an apple a day", "apple day"),
    ("Theater and anthem", "theater and anthem"),  # articles only as whole words
    ("U.S.A.", "usa"),
    ("state-of-the-art", "stateoftheart"),  # punctuation removed before articles are
    ("\tnew\nline ", "new line"),
    ("5–6 °C", "5–6 °c"),  # only ASCII punctuation is removed
    ("The", ""),
])
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_and_f1_by_hand():
    assert compute_exact("the Eiffel Tower", "Eiffel tower!") == 1
    assert compute_f1("the cat sat", "cat sat on mat") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert compute_f1("blue whale", "a whale") == pytest.approx(2 / 3)
    assert compute_f1("blue whale", "whale whale") == pytest.approx(2 * 0.5 * 0.5 / 1.0)  # counts, not sets
    assert compute_f1("red", "blue") == 0
    # an empty side: 1 only if both are empty
    assert compute_f1("", "") == 1 and compute_f1("", "x") == 0 and compute_f1("x", "") == 0
    assert compute_exact("", "") == 1 and compute_exact("", "the") == 1


def question(qid, *answers):
    context = "The Eiffel Tower is not a blue whale."
    return SquadExample(qid=qid, title="", context=context, question="?",
                        answers=[Answer(a, 0) for a in answers], is_impossible=not answers)


EXAMPLES = [
    question("q1", "the Eiffel Tower", "Eiffel Tower"),
    question("q2", "blue whale"),
    question("q3"),
    question("q4"),
    question("q5", "the"),  # answerable, but the gold normalises to nothing: scored as a no-answer gold
]
PREDICTIONS = {"q1": "Eiffel tower!", "q2": "a whale", "q3": "", "q4": "something", "q5": ""}


def test_squad2_metric_by_hand():
    result = squad_evaluate(EXAMPLES, PREDICTIONS)
    assert list(result) == V2_KEYS
    assert result == pytest.approx({
        "exact": 60.0, "f1": 100 * (1 + 2 / 3 + 1 + 0 + 1) / 5, "total": 5,
        "HasAns_exact": 200 / 3, "HasAns_f1": 100 * (1 + 2 / 3 + 1) / 3, "HasAns_total": 3,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2})


def test_no_answer_threshold_and_best_threshold_search_by_hand():
    na_probs = {"q1": 0.1, "q2": 0.7, "q3": 0.9, "q4": 0.8, "q5": 0.2}
    result = squad_evaluate(EXAMPLES, PREDICTIONS, na_probs=na_probs, na_prob_thresh=0.5)
    assert list(result) == V2_KEYS + BEST_KEYS
    # above 0.5, q2 (answerable) becomes "" (wrong), q3 and q4 (unanswerable) become "" (right)
    assert result == pytest.approx({
        "exact": 80.0, "f1": 80.0, "total": 5,
        "HasAns_exact": 200 / 3, "HasAns_f1": 200 / 3, "HasAns_total": 3,
        "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 2,
        # answering q1 q5 q2 q4 q3 in turn from 2 no-answer points: exact 3, 4, 4, 3, 3; f1 3, 4, 4 + 2/3, ..
        "best_exact": 80.0, "best_exact_thresh": 0.2,
        "best_f1": 100 * (4 + 2 / 3) / 5, "best_f1_thresh": 0.7})
    # without a probability file every question counts as answered (probability 0)
    assert squad_evaluate(EXAMPLES, PREDICTIONS, na_prob_thresh=-1.0)["exact"] == 100 * 2 / 5


def test_best_threshold_ties_follow_the_probability_file_order():
    examples = [question("has", "blue whale"), question("none")]
    predictions = {"has": "blue whale", "none": "a guess"}
    forward = squad_evaluate(examples, predictions, na_probs={"has": 0.5, "none": 0.5})
    backward = squad_evaluate(examples, predictions, na_probs={"none": 0.5, "has": 0.5})
    assert (forward["best_exact"], forward["best_exact_thresh"]) == (100.0, 0.5)
    assert (backward["best_exact"], backward["best_exact_thresh"]) == (50.0, 0.0)


def test_squad11_keys_and_unanswered_questions():
    examples = [question("q1", "the Eiffel Tower"), question("q2", "blue whale"), question("q3", "the")]
    result = squad_evaluate(examples, {"q1": "Eiffel Tower", "q2": "whale", "q3": "a"})
    # v1.1's F1 has no empty-text case: "the" vs "a" is an exact match with F1 0
    assert result == pytest.approx(collections.OrderedDict(
        [("exact_match", 200 / 3), ("f1", 100 * (1 + 2 / 3 + 0) / 3)]))
    assert list(result) == ["exact_match", "f1"]
    with pytest.warns(UserWarning, match="2 unanswered questions will receive score 0"):
        assert squad_evaluate(examples, {"q1": "Eiffel Tower"})["exact_match"] == pytest.approx(100 / 3)
    with pytest.raises(UserInputError, match="SQuAD 2.0 data only"):
        squad_evaluate(examples, {"q1": ""}, na_probs={"q1": 0.0})


def test_squad2_missing_predictions_or_probabilities_are_errors():
    with pytest.raises(UserInputError, match="1 of 5 questions have no prediction"):
        squad_evaluate(EXAMPLES, {k: v for k, v in PREDICTIONS.items() if k != "q3"})
    with pytest.raises(UserInputError, match="no no-answer probability"):
        squad_evaluate(EXAMPLES, PREDICTIONS, na_probs={"q1": 0.0})


@pytest.fixture(scope="module")
def dev_path():
    return shared_path("data", "squad2", "squad2-dev-part.json")


def test_cli_on_the_shared_dev_data(tmp_path, dev_path, capsys):
    data = load_squad(dev_path)
    gold = {e.qid: e.answers[-1].text if e.answers else "" for e in data.examples}
    # the official script drops gold answers that normalise to nothing: one last dev answer is "."
    dropped = [e.qid for e in data.examples if e.answers and not normalize_answer(e.answers[-1].text)]
    assert len(dropped) == 1
    # unanswerable questions answered with a guess, flagged by a high no-answer probability
    predictions = {qid: text or "Normandy" for qid, text in gold.items()}
    na_probs = {qid: 0.0 if text else 0.9 for qid, text in gold.items()}
    (tmp_path / "pred.json").write_text(json.dumps(predictions))
    (tmp_path / "na.json").write_text(json.dumps(na_probs))

    result = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_squad2.py"), str(dev_path),
                             str(tmp_path / "pred.json"), "--na-prob-file", str(tmp_path / "na.json"),
                             "--out-file", str(tmp_path / "eval.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout, object_pairs_hook=collections.OrderedDict)
    assert printed == json.loads((tmp_path / "eval.json").read_text())
    assert list(printed) == V2_KEYS + BEST_KEYS
    assert printed["total"] == 6078 and printed["NoAns_total"] == 3168 and printed["NoAns_exact"] == 0.0
    assert printed["HasAns_exact"] == pytest.approx(100 * (2910 - 1) / 2910)
    assert printed["best_exact_thresh"] == 0.0  # all answerable answered, all unanswerable withheld
    assert printed["best_exact"] == pytest.approx(100 * (6078 - 1) / 6078)

    # a threshold between the two probabilities turns exactly the guesses into ""
    evaluate_squad2.main([str(dev_path), str(tmp_path / "pred.json"), "-n", str(tmp_path / "na.json"),
                          "-t", "0.5"])
    assert json.loads(capsys.readouterr().out)["exact"] == pytest.approx(100 * (6078 - 1) / 6078)


@pytest.mark.parametrize("predictions, message", [
    ("[1, 2]", "expected a JSON object"),
    ('{"x": 3}', "question x: expected str"),
    ("{", "not valid JSON"),
    ("{}", "6078 of 6078 questions have no prediction"),
])
def test_cli_bad_predictions_are_one_line_errors(tmp_path, dev_path, predictions, message):
    (tmp_path / "pred.json").write_text(predictions)
    with pytest.raises(UserInputError, match=message):
        evaluate_squad2.main([str(dev_path), str(tmp_path / "pred.json")])


def test_answer_nothing_baseline_and_warnings_on_the_shared_dev_data(tmp_path, dev_path, capsys):
    """The score of answering nothing is the share of unanswerable questions (3168 of 6078 here), computed
    by the metric itself; evaluate_squad2 says so beside the score (stderr: stdout stays the official JSON)
    and flags predictions that answer nothing, or get no answerable question partly right."""
    from fairseq_ext.squad.metric import no_answer_baseline, score_notes

    data = load_squad(dev_path)
    assert no_answer_baseline("squad", data) == pytest.approx(100 * 3168 / 6078)
    assert no_answer_baseline("cmrc", data) == pytest.approx(100 * 3168 / 6078)  # our CMRC extension
    v1 = [example for example in data.examples if example.answers][:50]
    assert no_answer_baseline("squad", v1, version_2=False) == 0.0

    nothing = {example.qid: "" for example in data.examples}
    (tmp_path / "nothing.json").write_text(json.dumps(nothing))
    assert evaluate_squad2.main([str(dev_path), str(tmp_path / "nothing.json")]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["f1"] == pytest.approx(100 * 3168 / 6078)
    assert printed.err.splitlines() == [
        f"EM {100 * 3168 / 6078:.2f}, F1 {100 * 3168 / 6078:.2f}; answering nothing scores "
        f"{100 * 3168 / 6078:.2f} on this data (the share of unanswerable questions); 0 of 6078 questions "
        "answered",
        "warning: the model answers 0 of 6078 questions: its score is (almost) that of answering nothing, "
        "not of reading"]

    wrong = {example.qid: "zzz" if example.answers else "" for example in data.examples}
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    assert evaluate_squad2.main([str(dev_path), str(tmp_path / "wrong.json")]) == 0
    assert capsys.readouterr().err.splitlines()[1] == (
        "warning: HasAns F1 is 0: no answerable question got a single word right")

    good = {example.qid: example.answers[0].text if example.answers else "" for example in data.examples}
    result = squad_evaluate(data, good)
    assert len(score_notes("squad", result, no_answer_baseline("squad", data), 2910, 6078)) == 1


def test_file_identity_names_only_the_official_dev_file(dev_path, tmp_path):
    """The official dev-v2.0.json is recognised by its published sha256; the shared part of it is not."""
    import hashlib

    from fairseq_ext.squad.data import OFFICIAL_FILES, file_identity

    identity = file_identity(dev_path)
    digest = hashlib.sha256(dev_path.read_bytes()).hexdigest()
    assert identity == {"file": "squad2-dev-part.json", "sha256": digest, "dataset": None,
                        "dataset_name": None}
    assert OFFICIAL_FILES["80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8"][0] == "squad_v2"


# issue 27: 4 answerable questions whose best non-null answers are right (null odds 0.5, 0.8, 1.2, -1) and 2
# unanswerable ones (5, 6); predicted with threshold 0, three right answers were cut to ""
THRESHOLD_EXAMPLES = [question("a1", "Eiffel Tower"), question("a2", "blue whale"), question("a3", "whale"),
                      question("a4", "Tower"), question("u1"), question("u2")]
THRESHOLD_ODDS = {"a1": 0.5, "a2": 0.8, "a3": 1.2, "a4": -1.0, "u1": 5.0, "u2": 6.0}
NON_NULL = {"a1": "Eiffel Tower", "a2": "blue whale", "a3": "whale", "a4": "Tower", "u1": "not",
            "u2": "Eiffel"}
CUT_AT_0 = {qid: text if THRESHOLD_ODDS[qid] <= 0 else "" for qid, text in NON_NULL.items()}


def test_best_threshold_search_finds_a_positive_optimum_on_the_best_non_null_answers():
    searched = squad_evaluate(THRESHOLD_EXAMPLES, CUT_AT_0, na_probs=THRESHOLD_ODDS, na_prob_thresh=0.0,
                              non_null=NON_NULL)
    assert (searched["best_f1"], searched["best_f1_thresh"]) == (100.0, 1.2)
    assert (searched["best_exact"], searched["best_exact_thresh"]) == (100.0, 1.2)
    # the thresholded scores are those of the predictions as given (3 of 6 right)
    as_given = squad_evaluate(THRESHOLD_EXAMPLES, CUT_AT_0, na_probs=THRESHOLD_ODDS, na_prob_thresh=0.0)
    assert {k: searched[k] for k in V2_KEYS} == {k: as_given[k] for k in V2_KEYS} and as_given["f1"] == 50.0
    # searched on the cut answers (the official script fed predictions.json) it cannot pass threshold 0
    assert (as_given["best_f1"], as_given["best_f1_thresh"]) == (50.0, -1.0)
    # the same with the uncut answers as predictions: the official script's intended use
    official = squad_evaluate(THRESHOLD_EXAMPLES, NON_NULL, na_probs=THRESHOLD_ODDS, na_prob_thresh=1.2)
    assert official["f1"] == 100.0 and (official["best_f1"], official["best_f1_thresh"]) == (100.0, 1.2)


def test_cli_searches_the_best_non_null_answers_of_the_nbest_file(tmp_path, capsys):
    context = THRESHOLD_EXAMPLES[0].context
    data = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": e.qid, "question": "?", "is_impossible": e.is_impossible,
         "answers": [{"text": a.text, "answer_start": context.index(a.text)} for a in e.answers]}
        for e in THRESHOLD_EXAMPLES]}]}]}
    nbest = {qid: [{"text": "", "probability": 0.6}, {"text": text, "probability": 0.4}]
             for qid, text in NON_NULL.items()}
    files = {"data.json": data, "pred.json": CUT_AT_0, "null_odds.json": THRESHOLD_ODDS, "nbest.json": nbest}
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    evaluate_squad2.main([str(tmp_path / "data.json"), str(tmp_path / "pred.json"), "-n",
                          str(tmp_path / "null_odds.json"), "-t", "0",
                          "--nbest-file", str(tmp_path / "nbest.json")])
    result = json.loads(capsys.readouterr().out)
    assert (result["f1"], result["best_f1"], result["best_f1_thresh"]) == (50.0, 100.0, 1.2)
    with pytest.raises(UserInputError, match="give --na-prob-file too"):
        evaluate_squad2.main([str(tmp_path / "data.json"), str(tmp_path / "pred.json"),
                              "--nbest-file", str(tmp_path / "nbest.json")])
