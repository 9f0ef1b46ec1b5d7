"""The CMRC 2018 metric (``cmrc2018_evaluate.py`` v5, the official one for Chinese span QA; DRCD uses it too).

Texts are lower-cased, stripped and cut into a mixed segmentation: each CJK character (U+4E00-U+9FA5) and
each listed punctuation mark is a segment, other runs are word-tokenized. F1 comes from the longest common
*substring* of the gold and predicted segment lists (listed punctuation removed), EM compares the texts with
listed punctuation removed; both take the best gold answer and are averaged over all questions, a question
without a prediction scoring 0 (and counted in SKIP). Keys and values as the official script prints them:
AVERAGE (of EM and F1), F1, EM, TOTAL, SKIP.

Runs are tokenized by nltk's Treebank word tokenizer (``nltk.word_tokenize(run, preserve_line=True)``): the
official ``nltk.word_tokenize`` first splits a run into sentences with the punkt model, a separate data
download, whose only effect on a run is that a word-final ``.`` before more text ("etc. and") becomes its own
token. Such runs are rare in answers, and only F1 can differ.

An extension of ours: the official script knows answerable questions only; a question without gold answers
(SQuAD 2.0's unanswerable) scores 1 on EM and F1 when the prediction is empty, else 0.
"""

from __future__ import annotations

import collections
from functools import cache
from typing import Mapping, Sequence

from fairseq_ext.errors import UserInputError
from fairseq_ext.squad.data import SquadExample

# The official list. "……" is two characters, so it never equals one character: kept as the script has it.
PUNCTUATION = frozenset(["-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
                         "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
                         "「", "」", "（", "）", "－", "～", "『", "』"])
CMRC_KEYS = ("AVERAGE", "F1", "EM", "TOTAL", "SKIP")


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fa5"


@cache
def _word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """nltk's word tokenization of one run without the punkt sentence split (see the module doc)."""
    return _word_tokenizer().tokenize(text)


def mixed_segmentation(text: str, remove_punctuation: bool = False) -> list[str]:
    """The official segmentation. Removed punctuation is skipped without ending the run it sits in
    ("foo-bar" gives one run "foobar"), as the official script does."""
    segments: list[str] = []
    run = ""
    for char in str(text).lower().strip():
        if remove_punctuation and char in PUNCTUATION:
            continue
        if _is_cjk(char) or char in PUNCTUATION:
            if run:
                segments.extend(word_tokenize(run))
                run = ""
            segments.append(char)
        else:
            run += char
    if run:
        segments.extend(word_tokenize(run))
    return segments


def remove_punctuation(text: str) -> str:
    return "".join(char for char in str(text).lower().strip() if char not in PUNCTUATION)


def longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest run of consecutive segments shared by ``a`` and ``b``."""
    best = 0
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b):
            if item == other:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(golds: Sequence[str], prediction: str) -> float:
    """Best F1 (0-1) over the gold answers; an empty side scores 0."""
    prediction_segments = mixed_segmentation(prediction, remove_punctuation=True)
    scores = [0.0]
    for gold in golds:
        gold_segments = mixed_segmentation(gold, remove_punctuation=True)
        common = longest_common_substring(gold_segments, prediction_segments)
        if common:
            precision, recall = common / len(prediction_segments), common / len(gold_segments)
            scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc_exact(golds: Sequence[str], prediction: str) -> int:
    prediction = remove_punctuation(prediction)
    return int(any(remove_punctuation(gold) == prediction for gold in golds))


def question_scores(example: SquadExample, prediction: str) -> tuple[float, float]:
    """(EM, F1) of one question, each 0-1."""
    if not example.answers:  # unanswerable (our extension): right iff nothing is predicted
        return (float(not prediction),) * 2
    golds = [answer.text for answer in example.answers]
    return float(cmrc_exact(golds, prediction)), cmrc_f1(golds, prediction)


def cmrc_evaluate(examples: Sequence[SquadExample],
                  predictions: Mapping[str, str]) -> collections.OrderedDict:
    """The official result (AVERAGE, F1, EM as percentages; TOTAL questions; SKIP without prediction)."""
    unlabelled = next((example.qid for example in examples if not example.labelled), None)
    if unlabelled is not None:
        raise UserInputError(f"question {unlabelled} has no gold answers (a test file): nothing to score")
    exact = f1 = 0.0
    skipped = 0
    for example in examples:
        if example.qid not in predictions:
            skipped += 1
            continue
        question_exact, question_f1 = question_scores(example, predictions[example.qid])
        exact += question_exact
        f1 += question_f1
    total = len(examples)
    f1_score, exact_score = 100.0 * f1 / max(total, 1), 100.0 * exact / max(total, 1)
    return collections.OrderedDict([("AVERAGE", (exact_score + f1_score) / 2), ("F1", f1_score),
                                    ("EM", exact_score), ("TOTAL", total), ("SKIP", skipped)])
