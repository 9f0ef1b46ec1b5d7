"""run_qa post-processing on synthetic logits with known answers: null odds, thresholds, windows, v1 mode,
and agreement with a plain transcription of transformers' utils_qa.postprocess_qa_predictions."""

import re

import numpy as np
import pytest

from fairseq_ext.squad import Answer, SquadExample, build_features, postprocess_predictions


class WordTokenizer:
    """One token per whitespace-separated word: enough to lay out windows by hand."""

    def encode_with_offsets(self, text):
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        return [10 + i for i in range(len(spans))], spans


CONTEXT = "Paris is the capital and largest city of France ."
WORDS = CONTEXT.split()


def example(qid="q", context=CONTEXT, answer=None):
    answers = [Answer(answer, context.index(answer))] if answer else []
    return SquadExample(qid=qid, title="", context=context, question="Which city?", answers=answers,
                        is_impossible=not answers)


def logits_for(feature, start=None, end=None, null=(0.0, 0.0), high=10.0):
    """Start/end logits that are 0 everywhere, ``null`` at <s>, ``high`` at the given context words."""
    start_logits = np.zeros(len(feature.input_ids), dtype=np.float32)
    end_logits = np.zeros(len(feature.input_ids), dtype=np.float32)
    start_logits[0], end_logits[0] = null
    if start is not None:
        start_logits[feature.context_start + start] = high
        end_logits[feature.context_start + end] = high
    return start_logits, end_logits


def run(examples, features, logits, version_2=True, **kwargs):
    return postprocess_predictions(examples, features, [s for s, _ in logits], [e for _, e in logits],
                                   version_2_with_negative=version_2, **kwargs)


def test_answer_text_and_null_odds_of_one_window():
    examples = [example()]
    (feature,) = build_features(examples, WordTokenizer())
    start, end = logits_for(feature, WORDS.index("France"), WORDS.index("France"), null=(1.0, 2.0))
    predictions = run(examples, [feature], [(start, end)])
    assert predictions.answers == {"q": "France"}
    assert predictions.null_odds == {"q": pytest.approx(3.0 - 20.0)}
    best = predictions.nbest["q"][0]
    assert best == {"start_logit": 10.0, "end_logit": 10.0, "text": "France",
                    "probability": best["probability"]}
    assert "" in [candidate["text"] for candidate in predictions.nbest["q"]]
    assert sum(candidate["probability"] for candidate in predictions.nbest["q"]) == pytest.approx(1.0)


@pytest.mark.parametrize("threshold, answer", [(0.0, ""), (1.99, ""), (2.0, "Paris is"), (5.0, "Paris is")])
def test_null_answer_when_null_beats_the_best_span_by_more_than_the_threshold(threshold, answer):
    examples = [example()]
    (feature,) = build_features(examples, WordTokenizer())
    start, end = logits_for(feature, 0, 1, null=(11.0, 11.0))  # null 22 vs best span 20: odds 2
    predictions = run(examples, [feature], [(start, end)], null_score_diff_threshold=threshold)
    assert predictions.answers == {"q": answer} and predictions.null_odds["q"] == pytest.approx(2.0)
    assert predictions.non_null == {"q": "Paris is"}  # whatever the threshold: the best-threshold search's


def test_v1_mode_never_predicts_no_answer():
    examples = [example()]
    (feature,) = build_features(examples, WordTokenizer())
    start, end = logits_for(feature, 0, 0, null=(50.0, 50.0))
    predictions = run(examples, [feature], [(start, end)], version_2=False)
    assert predictions.answers == {"q": "Paris"} and predictions.null_odds == predictions.non_null == {}
    assert all(candidate["text"] for candidate in predictions.nbest["q"])


def test_only_context_spans_of_at_most_max_answer_length_tokens():
    examples = [example()]
    (feature,) = build_features(examples, WordTokenizer())
    france, first = WORDS.index("France"), feature.context_start

    start, end = logits_for(feature, france, france, high=5.0)
    start[1:first] = end[1:first] = 100.0  # question and </s></s>
    start[-1] = end[-1] = 100.0  # final </s>
    assert run(examples, [feature], [(start, end)]).answers == {"q": "France"}

    start, end = logits_for(feature)
    # the best pair would end before it starts
    start[first + france], end[first + 0], end[first + france] = 10.0, 10.0, 1.0
    assert run(examples, [feature], [(start, end)]).answers == {"q": "France"}

    start, end = logits_for(feature)
    start[first + 0], end[first + france], end[first + 1] = 10.0, 10.0, 1.0  # 9 tokens, or 2
    assert run(examples, [feature], [(start, end)]).answers == {"q": " ".join(WORDS[:france + 1])}
    assert run(examples, [feature], [(start, end)], max_answer_length=8).answers == {"q": "Paris is"}


def test_windows_null_score_is_the_lowest_and_spans_map_back_to_the_context():
    context = " ".join(f"w{i}" for i in range(40)) + " answer here ."
    examples = [example(context=context, answer="answer here")]
    features = build_features(examples, WordTokenizer(), max_seq_length=20, doc_stride=4, max_query_length=4)
    assert len(features) > 3 and features[-1].start_position
    logits = [logits_for(f, null=(3.0, 3.0)) for f in features[:-1]]
    # the answer window is sure there is an answer (null 1 + 1): the example's null score is 2
    last = features[-1]
    logits.append(logits_for(last, last.start_position - last.context_start,
                             last.end_position - last.context_start, null=(1.0, 1.0), high=4.0))
    predictions = run(examples, features, logits)
    assert predictions.answers == {"q": "answer here"}
    assert predictions.null_odds["q"] == pytest.approx(2.0 - 8.0)
    null = next(c for c in predictions.nbest["q"] if c["text"] == "")
    assert (null["start_logit"], null["end_logit"]) == (1.0, 1.0)


def test_padded_logits_beyond_a_feature_are_ignored():
    examples = [example(qid="a"), example(qid="b", context="Short one .")]
    features = build_features(examples, WordTokenizer())
    logits = [logits_for(features[0], 0, 0), logits_for(features[1], 0, 1)]
    width = max(len(f.input_ids) for f in features) + 3
    padded = np.full((2, 2, width), 99.0, dtype=np.float32)
    for k, (start, end) in enumerate(logits):
        padded[0, k, :len(start)], padded[1, k, :len(end)] = start, end
    assert postprocess_predictions(examples, features, padded[0], padded[1], True).answers == \
        run(examples, features, logits).answers == {"a": "Paris", "b": "Short one"}


def utils_qa_reference(examples, features, all_start_logits, all_end_logits, version_2_with_negative,
                       n_best_size=20, max_answer_length=30, null_score_diff_threshold=0.0):
    """transformers' utils_qa.postprocess_qa_predictions transcribed loop by loop (offset_mapping None
    outside the context as run_qa's prepare_validation_features sets it)."""
    answers, null_odds, nbest_json = {}, {}, {}
    for example_index, example in enumerate(examples):
        min_null_prediction, prelim_predictions = None, []
        for feature_index, feature in enumerate(features):
            if feature.example_index != example_index:
                continue
            start_logits, end_logits = all_start_logits[feature_index], all_end_logits[feature_index]
            offset_mapping = feature.token_offsets
            feature_null_score = start_logits[0] + end_logits[0]
            if min_null_prediction is None or min_null_prediction["score"] > feature_null_score:
                min_null_prediction = {"offsets": (0, 0), "score": feature_null_score,
                                       "start_logit": start_logits[0], "end_logit": end_logits[0]}
            start_indexes = np.argsort(start_logits)[-1:-n_best_size - 1:-1].tolist()
            end_indexes = np.argsort(end_logits)[-1:-n_best_size - 1:-1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if offset_mapping[start_index] is None or offset_mapping[end_index] is None:
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim_predictions.append({
                        "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                        "score": start_logits[start_index] + end_logits[end_index],
                        "start_logit": start_logits[start_index], "end_logit": end_logits[end_index]})
        if version_2_with_negative:
            prelim_predictions.append(min_null_prediction)
            null_score = min_null_prediction["score"]
        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        if version_2_with_negative and not any(p["offsets"] == (0, 0) for p in predictions):
            predictions.append(min_null_prediction)
        for pred in predictions:
            offsets = pred.pop("offsets")
            pred["text"] = example.context[offsets[0]:offsets[1]]
        if len(predictions) == 0 or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        scores = np.array([pred.pop("score") for pred in predictions])
        exp_scores = np.exp(scores - np.max(scores))
        for prob, pred in zip(exp_scores / exp_scores.sum(), predictions):
            pred["probability"] = prob
        if not version_2_with_negative:
            answers[example.qid] = predictions[0]["text"]
        else:
            i = 0
            while predictions[i]["text"] == "":
                i += 1
            best_non_null_pred = predictions[i]
            score_diff = null_score - best_non_null_pred["start_logit"] - best_non_null_pred["end_logit"]
            null_odds[example.qid] = float(score_diff)
            if score_diff > null_score_diff_threshold:
                answers[example.qid] = ""
            else:
                answers[example.qid] = best_non_null_pred["text"]
        nbest_json[example.qid] = [
            {k: (float(v) if isinstance(v, (np.float16, np.float32, np.float64)) else v)
             for k, v in p.items()}
            for p in predictions]
    return answers, null_odds, nbest_json


@pytest.mark.parametrize("version_2", [True, False])
def test_agrees_with_utils_qa_on_random_logits_with_ties(version_2):
    rng = np.random.default_rng(7)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    examples = []
    for k in range(30):
        context = " ".join(rng.choice(words, size=int(rng.integers(5, 80))))
        examples.append(example(qid=f"q{k}", context=context))
    features = build_features(examples, WordTokenizer(), max_seq_length=40, doc_stride=8, max_query_length=8)
    # logits on a coarse grid: many equal scores, so candidate order matters
    start_logits = [np.round(rng.normal(size=len(f.input_ids)) * 2).astype(np.float32) / 2 for f in features]
    end_logits = [np.round(rng.normal(size=len(f.input_ids)) * 2).astype(np.float32) / 2 for f in features]
    for kwargs in ({}, {"n_best_size": 5, "max_answer_length": 4, "null_score_diff_threshold": -1.5}):
        ours = postprocess_predictions(examples, features, start_logits, end_logits, version_2, **kwargs)
        answers, null_odds, nbest = utils_qa_reference(examples, features, start_logits, end_logits,
                                                        version_2, **kwargs)
        assert ours.answers == answers and ours.null_odds == null_odds and ours.nbest == nbest
        assert len(set(answers.values())) > 10 and (not version_2 or "" in answers.values())
