"""From start/end logits per window to answer texts: transformers run_qa's post-processing
(``utils_qa.postprocess_qa_predictions``), vectorised over the n_best x n_best candidate grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from fairseq_ext.squad.data import SquadExample
from fairseq_ext.squad.features import QAFeature
from fairseq_ext.squad.settings import DEFAULT


@dataclass
class Predictions:
    answers: dict[str, str]  # qid -> answer text, "" for no answer
    null_odds: dict[str, float]  # qid -> null score - best non-null score (SQuAD 2.0 only; empty for 1.1)
    nbest: dict[str, list[dict]]  # qid -> [{start_logit, end_logit, text, probability}], best first
    # qid -> best non-null answer whatever the threshold (SQuAD 2.0 only): what the best-threshold search
    # scores, as the official script intends
    non_null: dict[str, str] = field(default_factory=dict)


def postprocess_predictions(examples: Sequence[SquadExample], features: Sequence[QAFeature],
                            start_logits, end_logits, version_2_with_negative: bool,
                            n_best_size: int = DEFAULT.n_best_size,
                            max_answer_length: int = DEFAULT.max_answer_length,
                            null_score_diff_threshold: float = DEFAULT.null_score_diff_threshold
                            ) -> Predictions:
    """Answers per example from the logits of its windows (``start_logits[i]`` belongs to ``features[i]``).

    Candidates: the ``n_best_size`` highest start and end logits of each window, spans of context tokens
    only, at most ``max_answer_length`` tokens. With ``version_2_with_negative`` the null score is the
    lowest ``start[0] + end[0]`` over the example's windows and "" is predicted when
    null score - best non-null score > ``null_score_diff_threshold``; that difference is the null odds.
    Logits may be padded beyond a feature's length: positions past it are ignored.
    """
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise ValueError(f"{len(start_logits)} start and {len(end_logits)} end logits "
                         f"for {len(features)} features")
    features_per_example = [[] for _ in examples]
    for feature_index, feature in enumerate(features):
        features_per_example[feature.example_index].append(feature_index)

    predictions = Predictions(answers={}, null_odds={}, nbest={})
    for example, feature_indices in zip(examples, features_per_example):
        if not feature_indices:
            raise ValueError(f"question {example.qid} has no features")
        nbest, null = _example_nbest(example.context, [features[i] for i in feature_indices],
                                     [start_logits[i] for i in feature_indices],
                                     [end_logits[i] for i in feature_indices],
                                     version_2_with_negative, n_best_size, max_answer_length)
        if version_2_with_negative:
            best_non_null = next(candidate for candidate in nbest if candidate["text"] != "")
            null_odds = float(null["score"] - best_non_null["start_logit"] - best_non_null["end_logit"])
            predictions.null_odds[example.qid] = null_odds
            predictions.non_null[example.qid] = best_non_null["text"]
            answer = "" if null_odds > null_score_diff_threshold else best_non_null["text"]
        else:
            answer = nbest[0]["text"]
        predictions.answers[example.qid] = answer
        predictions.nbest[example.qid] = [
            {key: (float(value) if isinstance(value, np.floating) else value)
             for key, value in candidate.items() if key != "score"}
            for candidate in nbest
        ]
    return predictions


def _example_nbest(context: str, features: list[QAFeature], start_logits: list, end_logits: list,
                   version_2_with_negative: bool, n_best_size: int, max_answer_length: int):
    """The n-best candidates of one example (dicts with score, start_logit, end_logit, text, probability)
    and its null candidate (lowest start[0] + end[0] over windows)."""
    null = None
    spans, scores, span_start_logits, span_end_logits = [], [], [], []
    for feature, feature_start_logits, feature_end_logits in zip(features, start_logits, end_logits):
        length = len(feature.input_ids)
        starts = np.asarray(feature_start_logits)[:length]
        ends = np.asarray(feature_end_logits)[:length]
        null_score = starts[0] + ends[0]
        if null is None or null["score"] > null_score:
            null = {"score": null_score, "start_logit": starts[0], "end_logit": ends[0], "text": ""}

        # np.argsort as run_qa calls it, so that ties are broken the same way
        top_starts = np.argsort(starts)[-1:-n_best_size - 1:-1]
        top_ends = np.argsort(ends)[-1:-n_best_size - 1:-1]
        in_context = np.array([offset is not None for offset in feature.token_offsets])
        span_starts, span_ends = np.meshgrid(top_starts, top_ends, indexing="ij")  # start-major like run_qa
        valid = (in_context[span_starts] & in_context[span_ends] & (span_ends >= span_starts)
                 & (span_ends - span_starts + 1 <= max_answer_length))
        for start_index, end_index in zip(span_starts[valid].tolist(), span_ends[valid].tolist()):
            spans.append((feature.token_offsets[start_index][0], feature.token_offsets[end_index][1]))
        scores.append(starts[span_starts[valid]] + ends[span_ends[valid]])
        span_start_logits.append(starts[span_starts[valid]])
        span_end_logits.append(ends[span_ends[valid]])

    span_scores = np.concatenate(scores + ([np.array([null["score"]])] if version_2_with_negative else []))
    span_start_logits, span_end_logits = np.concatenate(span_start_logits), np.concatenate(span_end_logits)
    # a stable descending sort keeps run_qa's order among equal scores (the null candidate comes last)
    nbest = []
    for index in np.argsort(-span_scores, kind="stable")[:n_best_size].tolist():
        if index == len(spans):
            nbest.append(null)
        else:
            begin, end = spans[index]
            nbest.append({"score": span_scores[index], "start_logit": span_start_logits[index],
                          "end_logit": span_end_logits[index], "text": context[begin:end]})
    if version_2_with_negative and not any(candidate is null for candidate in nbest):
        nbest.append(null)
    if not any(candidate["text"] for candidate in nbest):
        # run_qa's placeholder when no candidate has text (run_qa itself fails in some of these cases)
        nbest.insert(0, {"score": 0.0, "start_logit": 0.0, "end_logit": 0.0, "text": "empty"})

    scores = np.array([candidate["score"] for candidate in nbest])
    probabilities = np.exp(scores - np.max(scores))
    probabilities /= probabilities.sum()
    for candidate, probability in zip(nbest, probabilities):
        candidate["probability"] = probability
    return nbest, null
