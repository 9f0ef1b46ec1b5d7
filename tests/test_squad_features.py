"""Sliding-window features on the shared SQuAD 2.0 data: labels decode to the gold answers, and windows,
ids and labels agree with transformers' run_qa preparation over a RoBERTa fast tokenizer."""

import collections
import json

import numpy as np
import pytest
from fairseq.data import Dictionary

from fairseq_ext.errors import UserInputError
from fairseq_ext.squad import (
    Answer,
    HFTokenizerAdapter,
    SquadExample,
    build_features,
    load_squad,
    postprocess_predictions,
    squad_evaluate,
)
from fairseq_ext.tokenizer import Gpt2Bpe
from scripts.benchmarks.squad_features import (
    reference_to_fairseq_ids,
    reference_tokenizer,
    run_qa_train_features,
)
from tests.conftest import shared_path

# A gold answer need not end (or start) on a BPE token boundary ("1990" inside "1990s"): the
# labelled span then is the smallest token span covering it, as in run_qa.
BOUNDARY_CATEGORIES = {"answer starts inside a token", "answer ends inside a token"}


@pytest.fixture(scope="module")
def dictionary(gpt2_bpe_dir):
    return Dictionary.load(str(gpt2_bpe_dir / "dict.txt"))


@pytest.fixture(scope="module")
def dictionary_bpe(gpt2_bpe_dir, dictionary):
    return Gpt2Bpe.from_dir(gpt2_bpe_dir).to_dictionary(dictionary.symbols)


@pytest.fixture(scope="module")
def dev():
    return load_squad(shared_path("data", "squad2", "squad2-dev-part.json"))


@pytest.fixture(scope="module")
def dev_features(dev, dictionary_bpe):
    return build_features(dev.examples, dictionary_bpe)


def label_mismatch(example, feature):
    """None if the labelled span's text (via offsets) is the gold answer, else the boundary category."""
    answer = example.answers[0]
    begin = feature.token_offsets[feature.start_position][0]
    end = feature.token_offsets[feature.end_position][1]
    if example.context[begin:end] == answer.text:
        return None
    if not (begin <= answer.start and answer.start + len(answer.text) <= end):
        return "labelled span does not cover the answer"
    if begin < answer.start:
        return "answer starts inside a token"
    return "answer ends inside a token"


def decodes_to_but_split_characters(decoded: str, text: str) -> bool:
    """The ids decode to the text the offsets point at, except that a multi-byte character split between
    two tokens belongs to the offsets of both: run_qa's rule starts a span at the token holding its last
    bytes (ends it at the one holding its first bytes), which alone decode to U+FFFD."""
    if decoded[:1] == "\ufffd" and ord(text[0]) > 127:
        decoded, text = decoded[1:], text[1:]
    if decoded[-1:] == "\ufffd" and ord(text[-1]) > 127:
        decoded, text = decoded[:-1], text[:-1]
    return decoded == text


def test_labels_decode_to_the_gold_answers(dev, dev_features, dictionary):
    labelled = collections.defaultdict(list)
    for feature in dev_features:
        if feature.start_position:
            labelled[feature.example_index].append(feature)
    answerable = [i for i, example in enumerate(dev.examples) if not example.is_impossible]
    # windows overlap by 128 tokens, so every SQuAD answer fits one; unanswerable questions get none
    assert sorted(labelled) == answerable

    bpe = Gpt2Bpe.from_dir(shared_path("gpt2_bpe"))
    mismatches, split_characters = collections.Counter(), 0
    for example_index, features in labelled.items():
        example = dev.examples[example_index]
        for feature in features:
            span = slice(feature.start_position, feature.end_position + 1)
            text = example.context[feature.token_offsets[span][0][0]:feature.token_offsets[span][-1][1]]
            gpt2_ids = [int(dictionary[index]) for index in feature.input_ids[span]]
            decoded = bpe.decode(gpt2_ids).strip()
            if decoded != text:
                assert decodes_to_but_split_characters(decoded, text), (decoded, text)
                split_characters += 1
            category = label_mismatch(example, feature)
            if category:
                mismatches[category] += 1
                print(f"{example.qid}: gold {example.answers[0].text!r}, labelled {text!r} ({category})")
    print(f"label mismatches in {len(answerable)} answerable questions: {dict(mismatches)}; "
          f"{split_characters} labelled spans start or end inside a multi-byte character")
    assert set(mismatches) == BOUNDARY_CATEGORIES
    assert sum(mismatches.values()) < 0.01 * len(answerable)


def test_windows_ids_and_labels_agree_with_run_qa(dev, dev_features, dictionary_bpe, gpt2_bpe_dir):
    tokenizer = reference_tokenizer(gpt2_bpe_dir)
    to_fairseq = reference_to_fairseq_ids(tokenizer, dictionary_bpe)
    reference = run_qa_train_features(tokenizer, dev.examples)
    # run_qa never cuts the question, we cut it at max_query_length=64 tokens: no dev question is that long
    assert max(f.context_start - 3 for f in dev_features) <= 64
    assert len(reference) == len(dev_features)

    offset_differences = 0
    for ours, theirs in zip(dev_features, reference):
        assert ours.example_index == theirs["example_index"]
        assert ours.input_ids == to_fairseq[theirs["input_ids"]].tolist()
        assert (ours.start_position, ours.end_position) == (theirs["start_position"], theirs["end_position"])
        assert [k for k, o in enumerate(ours.token_offsets) if o is not None] == \
            [k for k, s in enumerate(theirs["sequence_ids"]) if s == 1]
        context = dev.examples[ours.example_index].context
        for k in range(ours.context_start, len(ours.input_ids) - 1):
            if ours.token_offsets[k] != tuple(theirs["offsets"][k]):
                # RobertaProcessing trims only spaces, we trim any whitespace: whitespace-only tokens
                begin, end = theirs["offsets"][k]
                assert ours.token_offsets[k][0] == ours.token_offsets[k][1] and not context[begin:end].strip()
                offset_differences += 1
    print(f"{len(reference)} windows agree; {offset_differences} whitespace-only token offsets differ")


def fairseq_index_tokenizer(gpt2_bpe_dir, dictionary_bpe):
    """A RoBERTa fast tokenizer whose ids are fairseq indices, as an exported HF model has."""
    from transformers import RobertaTokenizerFast

    encoder = json.loads((gpt2_bpe_dir / "encoder.json").read_text(encoding="utf-8"))
    vocab = {token: int(dictionary_bpe.lookup[gpt2_id]) for token, gpt2_id in encoder.items()}
    vocab.update({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": len(dictionary_bpe.lookup) + 7})
    lines = (gpt2_bpe_dir / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    return RobertaTokenizerFast(vocab=vocab, merges=merges)


def test_hf_adapter_gives_identical_features(dev, dev_features, dictionary_bpe, gpt2_bpe_dir):
    adapter = HFTokenizerAdapter(fairseq_index_tokenizer(gpt2_bpe_dir, dictionary_bpe))
    odd = SquadExample(qid="odd", title="", context="Line one.\n  Two\u00a0 words  \n\n end \t x ",
                       question="  Which words?", answers=[Answer("Two", 12)], is_impossible=False)
    assert adapter.encode_with_offsets(odd.context) == dictionary_bpe.encode_with_offsets(odd.context)
    assert build_features([odd], adapter) == build_features([odd], dictionary_bpe)
    assert build_features(dev.examples, adapter) == dev_features


def test_windows_overlap_by_doc_stride_and_cover_the_context(dev, dictionary_bpe, gpt2_bpe_dir):
    longest = max(dev.examples, key=lambda example: len(example.context))
    answerable = next(e for e in dev.examples if e.context == longest.context and not e.is_impossible)
    features = build_features([answerable], dictionary_bpe, max_seq_length=64, doc_stride=16,
                              max_query_length=8)
    context_ids, _ = dictionary_bpe.encode_with_offsets(answerable.context)
    question_ids, _ = dictionary_bpe.encode_with_offsets(answerable.question.lstrip())
    window = 64 - min(len(question_ids), 8) - 4
    assert len(features) > 3
    for k, feature in enumerate(features):
        assert feature.input_ids[:feature.context_start] == [0, *question_ids[:8], 2, 2]
        assert feature.input_ids[-1] == 2 and len(feature.input_ids) <= 64
        assert feature.input_ids[feature.context_start:-1] == context_ids[k * (window - 16):][:window]
    assert features[-1].input_ids[-2] == context_ids[-1]
    assert sum(f.start_position > 0 for f in features) >= 1

    # run_qa on the same small windows (question short enough not to be cut) agrees
    short = SquadExample(**{**vars(answerable), "question": "Why?"})
    tokenizer = reference_tokenizer(gpt2_bpe_dir)
    to_fairseq = reference_to_fairseq_ids(tokenizer, dictionary_bpe)
    reference = run_qa_train_features(tokenizer, [short], max_seq_length=64, doc_stride=16)
    ours = build_features([short], dictionary_bpe, max_seq_length=64, doc_stride=16, max_query_length=8)
    assert [f.input_ids for f in ours] == [to_fairseq[r["input_ids"]].tolist() for r in reference]
    assert [(f.start_position, f.end_position) for f in ours] == \
        [(r["start_position"], r["end_position"]) for r in reference]


def test_whitespace_around_an_answer_is_not_labelled(dictionary_bpe, gpt2_bpe_dir):
    """A principled difference from run_qa, which labels the neighbouring words of such an answer."""
    context = "The capital of France is Paris and it is big."
    example = SquadExample(qid="q", title="", context=context, question="Capital?",
                           answers=[Answer(" Paris ", context.index(" Paris "))], is_impossible=False)
    (feature,) = build_features([example], dictionary_bpe)
    begin = feature.token_offsets[feature.start_position][0]
    end = feature.token_offsets[feature.end_position][1]
    assert context[begin:end] == "Paris"
    (reference,) = run_qa_train_features(reference_tokenizer(gpt2_bpe_dir), [example])
    begin = reference["offsets"][reference["start_position"]][0]
    end = reference["offsets"][reference["end_position"]][1]
    assert context[begin:end] == "is Paris and"


def test_unanswerable_and_out_of_window_answers_point_at_bos(dev, dictionary_bpe):
    impossible = next(e for e in dev.examples if e.is_impossible)
    assert all(f.start_position == f.end_position == 0 for f in build_features([impossible], dictionary_bpe))
    context = " ".join(f"word{i}" for i in range(300)) + " needle."
    example = SquadExample(qid="q", title="", context=context, question="Where?",
                           answers=[Answer("needle", context.index("needle"))], is_impossible=False)
    features = build_features([example], dictionary_bpe, max_seq_length=128, doc_stride=32)
    labels = [(f.start_position, f.end_position) for f in features]
    assert labels[:-1] == [(0, 0)] * (len(features) - 1) and labels[-1] != (0, 0)


def test_bad_window_arguments_are_rejected(dev, dictionary_bpe):
    with pytest.raises(UserInputError, match="doc_stride"):
        build_features(dev.examples[:1], dictionary_bpe, max_seq_length=128, doc_stride=64,
                       max_query_length=64)


def test_oracle_logits_give_the_gold_answers_back(dev, dev_features):
    """Logits peaked on the labels, through run_qa post-processing and the official metric."""
    rng = np.random.default_rng(0)
    start_logits, end_logits = [], []
    for feature in dev_features:
        start, end = rng.normal(size=(2, len(feature.input_ids))).astype(np.float32)
        start[feature.start_position] += 20
        end[feature.end_position] += 20
        start_logits.append(start)
        end_logits.append(end)
    predictions = postprocess_predictions(dev.examples, dev_features, start_logits, end_logits,
                                          version_2_with_negative=True)
    result = squad_evaluate(dev, predictions.answers, na_probs=predictions.null_odds, na_prob_thresh=0.0)
    print(dict(result))
    assert result["NoAns_exact"] == 100.0
    assert result["HasAns_exact"] > 99.5 and result["HasAns_f1"] > 99.8
    features_of = collections.defaultdict(list)
    for feature in dev_features:
        features_of[feature.example_index].append(feature)
    for index, example in enumerate(dev.examples):
        if predictions.answers[example.qid] != (example.answers[0].text if example.answers else ""):
            # only answers not on token boundaries, or longer than max_answer_length=30 tokens, are missed
            labelled = [f for f in features_of[index] if f.start_position]
            assert ({label_mismatch(example, f) for f in labelled} <= BOUNDARY_CATEGORIES
                    or all(f.end_position - f.start_position + 1 > 30 for f in labelled))
