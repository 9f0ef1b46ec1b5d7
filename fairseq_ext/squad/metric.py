"""The official SQuAD evaluation: v2.0 (``evaluate-v2.0.py``: EM/F1, HasAns/NoAns, no-answer probability
threshold, best-threshold search) and v1.1 (``evaluate-v1.1.py``: exact_match/f1), same keys and values."""

from __future__ import annotations

import collections
import math
import re
import string
import warnings
from typing import Mapping, Optional, Sequence, Union

from fairseq_ext.errors import UserInputError
from fairseq_ext.squad.data import SquadData, SquadExample, parse_articles

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, punctuation removed, articles a/an/the removed, whitespace collapsed (official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def compute_exact(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def compute_f1(gold: str, prediction: str) -> float:
    """Token-overlap F1 of the normalised texts; an empty side scores 1 only when both are empty (v2.0)."""
    gold_tokens, prediction_tokens = _tokens(gold), _tokens(prediction)
    if not gold_tokens or not prediction_tokens:
        return int(gold_tokens == prediction_tokens)
    common = sum((collections.Counter(gold_tokens) & collections.Counter(prediction_tokens)).values())
    if common == 0:
        return 0
    precision, recall = common / len(prediction_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _f1_v1(gold: str, prediction: str) -> float:
    """evaluate-v1.1.py's F1: no special case for empty texts (an empty overlap scores 0)."""
    gold_tokens, prediction_tokens = normalize_answer(gold).split(), normalize_answer(prediction).split()
    common = sum((collections.Counter(gold_tokens) & collections.Counter(prediction_tokens)).values())
    if common == 0:
        return 0
    precision, recall = common / len(prediction_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


Gold = Union[SquadData, Sequence[SquadExample], Sequence[dict]]


def squad_evaluate(gold: Gold, predictions: Mapping[str, str], na_probs: Optional[Mapping[str, float]] = None,
                   na_prob_thresh: float = 1.0, version_2: Optional[bool] = None,
                   non_null: Optional[Mapping[str, str]] = None) -> collections.OrderedDict:
    """The official metric dict for ``predictions`` (qid -> text) against ``gold``: a SquadData, its
    examples, or the ``data`` list of a SQuAD file. ``version_2`` (default: the data's own, or whether
    any question is unanswerable) selects the v2.0 keys or the v1.1 ones (exact_match, f1).
    ``na_probs`` (qid -> no-answer probability or null odds) adds best_exact/best_f1 and their thresholds,
    searched on ``non_null`` (qid -> the best non-null answer, e.g. Predictions.non_null) where given, as
    the official script intends: on answers already cut at a threshold (predictions.json), the search could
    never find a threshold above that one.
    """
    if isinstance(gold, SquadData):
        version_2 = gold.version_2 if version_2 is None else version_2
        examples = gold.examples
    elif gold and isinstance(gold[0], dict):
        examples = parse_articles(list(gold), align_answers=False).examples
    else:
        examples = list(gold)
    unlabelled = next((example.qid for example in examples if not example.labelled), None)
    if unlabelled is not None:
        raise UserInputError(f"question {unlabelled} has no gold answers (a test file): nothing to score")
    if na_probs is not None:
        bad = next((qid for qid, value in na_probs.items() if not math.isfinite(value)), None)
        if bad is not None:
            raise UserInputError(f"no-answer probability of question {bad} is {na_probs[bad]}: not a number")
    if version_2 is None:
        version_2 = any(example.is_impossible for example in examples)
    if not version_2:
        if na_probs is not None:
            raise UserInputError("no-answer probabilities apply to SQuAD 2.0 data only")
        return _evaluate_v1(examples, predictions)
    return _evaluate_v2(examples, predictions, na_probs, na_prob_thresh, non_null or {})


def _evaluate_v1(examples: Sequence[SquadExample], predictions: Mapping[str, str]) -> collections.OrderedDict:
    exact = f1 = 0.0
    missing = [example.qid for example in examples if example.qid not in predictions]
    if missing:
        # evaluate-v1.1.py scores an unanswered question 0 and says so
        warnings.warn(f"{len(missing)} unanswered questions will receive score 0 (e.g. {missing[0]})",
                      stacklevel=3)
    for example in examples:
        if example.qid in predictions:
            golds = [answer.text for answer in example.answers]
            exact += max(compute_exact(g, predictions[example.qid]) for g in golds)
            f1 += max(_f1_v1(g, predictions[example.qid]) for g in golds)
    total = len(examples)
    return collections.OrderedDict([("exact_match", 100.0 * exact / total), ("f1", 100.0 * f1 / total)])


def _evaluate_v2(examples: Sequence[SquadExample], predictions: Mapping[str, str],
                 na_probs: Optional[Mapping[str, float]], na_prob_thresh: float,
                 non_null: Mapping[str, str]) -> collections.OrderedDict:
    missing = [example.qid for example in examples if example.qid not in predictions]
    if missing:  # evaluate-v2.0.py cannot score these either (it fails on them)
        raise UserInputError(f"{len(missing)} of {len(examples)} questions have no prediction "
                             f"(e.g. {', '.join(missing[:3])})")
    has_answer = {example.qid: bool(example.answers) for example in examples}
    exact_raw, f1_raw = _raw_scores(examples, predictions)

    thresholded_na_probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    absent = [qid for qid in exact_raw if qid not in thresholded_na_probs]
    if absent:
        raise UserInputError(f"{len(absent)} questions have no no-answer probability (e.g. {absent[0]})")
    exact = _apply_no_answer_threshold(exact_raw, thresholded_na_probs, has_answer, na_prob_thresh)
    f1 = _apply_no_answer_threshold(f1_raw, thresholded_na_probs, has_answer, na_prob_thresh)

    result = _eval_dict(exact, f1, list(exact))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid, has in has_answer.items() if has == wanted]
        if qids:
            for key, value in _eval_dict(exact, f1, qids).items():
                result[f"{prefix}_{key}"] = value
    if na_probs is not None:
        searched = {**predictions, **{qid: text for qid, text in non_null.items() if qid in predictions}}
        raw_scores = _raw_scores(examples, searched) if non_null else (exact_raw, f1_raw)
        for key, raw in zip(("exact", "f1"), raw_scores):
            result[f"best_{key}"], result[f"best_{key}_thresh"] = _best_threshold(searched, raw, na_probs,
                                                                                  has_answer)
    return result


def _raw_scores(examples: Sequence[SquadExample], predictions: Mapping[str, str]) -> tuple[dict, dict]:
    """(exact, f1) per question of ``predictions``, before any threshold."""
    exact_raw, f1_raw = {}, {}
    for example in examples:
        # answers that normalise to nothing count as no answer
        golds = [answer.text for answer in example.answers if normalize_answer(answer.text)] or [""]
        prediction = predictions[example.qid]
        exact_raw[example.qid] = max(compute_exact(g, prediction) for g in golds)
        f1_raw[example.qid] = max(compute_f1(g, prediction) for g in golds)
    return exact_raw, f1_raw


def _apply_no_answer_threshold(scores, na_probs, has_answer, na_prob_thresh):
    """A question whose no-answer probability exceeds the threshold is answered "": right iff unanswerable."""
    return {qid: float(not has_answer[qid]) if na_probs[qid] > na_prob_thresh else score
            for qid, score in scores.items()}


def _eval_dict(exact, f1, qids) -> collections.OrderedDict:
    total = len(qids)
    return collections.OrderedDict([("exact", 100.0 * sum(exact[q] for q in qids) / total),
                                    ("f1", 100.0 * sum(f1[q] for q in qids) / total), ("total", total)])


def _best_threshold(predictions, scores, na_probs, has_answer):
    """The score of the best no-answer threshold and that threshold, searched as the official script does:
    questions in increasing no-answer probability switch from "" to their prediction one by one."""
    best_score = current = sum(1 for has in has_answer.values() if not has)
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best_score:
            best_score, best_thresh = current, na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


METRICS = ("squad", "cmrc")


def evaluate(metric: str, gold: Gold, predictions: Mapping[str, str],
             na_probs: Optional[Mapping[str, float]] = None, na_prob_thresh: float = 1.0,
             version_2: Optional[bool] = None, non_null: Optional[Mapping[str, str]] = None
             ) -> collections.OrderedDict:
    """The result dict of ``metric``: "squad" (squad_evaluate: the official SQuAD v1.1/v2.0 keys) or "cmrc"
    (the CMRC 2018 metric for Chinese: AVERAGE, F1, EM, TOTAL, SKIP; no-answer probabilities unused)."""
    from fairseq_ext.squad.cmrc_metric import cmrc_evaluate

    if metric not in METRICS:
        raise UserInputError(f"unknown metric {metric!r} (one of {', '.join(METRICS)})")
    examples = gold.examples if isinstance(gold, SquadData) else list(gold)
    if examples and isinstance(examples[0], dict):
        examples = parse_articles(examples, align_answers=False).examples
    if metric == "cmrc":  # the official script skips (scores 0) a question without prediction, and says so
        if examples and not any(example.qid in predictions for example in examples):  # all: another file's
            raise UserInputError(f"none of the {len(examples)} questions has a prediction (e.g. "
                                 f"{examples[0].qid}): the predictions are for another data file")
        return cmrc_evaluate(examples, predictions)
    version_2 = gold.version_2 if isinstance(gold, SquadData) and version_2 is None else version_2
    return squad_evaluate(examples, predictions, na_probs=na_probs, na_prob_thresh=na_prob_thresh,
                          version_2=version_2, non_null=non_null)


def headline(metric: str, result: Mapping) -> tuple[float, float]:
    """(EM, F1) of a result dict of ``metric``, percentages."""
    if metric == "cmrc":
        return result["EM"], result["F1"]
    return result.get("exact", result.get("exact_match")), result["f1"]


# A model answering at most this share of the questions is flagged: its score is (almost) the baseline's.
ALMOST_NOTHING = 0.02


def no_answer_baseline(metric: str, gold: Gold, version_2: Optional[bool] = None) -> float:
    """F1 (and EM: the same) of answering "" to every question of ``gold``, by ``metric`` itself: for SQuAD
    2.0 (and CMRC with unanswerable questions) the share of unanswerable questions x 100, for v1.1 0. The
    number a score must be read against: a model that learned nothing scores exactly this."""
    examples = gold.examples if isinstance(gold, SquadData) else list(gold)
    if examples and isinstance(examples[0], dict):
        examples = parse_articles(examples, align_answers=False).examples
    nothing = {example.qid: "" for example in examples}
    if isinstance(gold, SquadData) and version_2 is None:
        version_2 = gold.version_2
    return headline(metric, evaluate(metric, examples, nothing, version_2=version_2))[1]


def score_notes(metric: str, result: Mapping, baseline: float, answered: int, total: int) -> list[str]:
    """The lines that say what a score means: the answer-nothing baseline beside EM/F1, and a warning when
    the model answers (almost) nothing or gets no answerable question partly right (HasAns F1 0)."""
    exact, f1 = headline(metric, result)
    notes = [f"EM {exact:.2f}, F1 {f1:.2f}; answering nothing scores {baseline:.2f} on this data (the share "
             f"of unanswerable questions); {answered} of {total} questions answered"]
    if answered <= ALMOST_NOTHING * total:
        notes.append(f"warning: the model answers {answered} of {total} questions: its score is (almost) "
                     "that of answering nothing, not of reading")
    elif result.get("HasAns_f1", 1.0) == 0:
        notes.append("warning: HasAns F1 is 0: no answerable question got a single word right")
    return notes
