"""Sliding-window QA features ``<s> question </s></s> context </s>`` with token-level answer labels.

Same windows and labels as transformers' run_qa ``prepare_train_features`` (fast tokenizer,
``truncation="only_second"``, ``stride=doc_stride``), computed from one tokenization per context.
A tokenizer is any object with ``encode_with_offsets(text) -> (ids, offsets)`` giving model ids and
character spans with leading whitespace trimmed: fairseq_ext.tokenizer.DictionaryTokenizer on the
fairseq side, fairseq_ext.tokenizer.hf_adapter.HFTokenizerAdapter on the Hugging Face side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

from fairseq_ext.errors import UserInputError
from fairseq_ext.squad.data import SquadExample
from fairseq_ext.squad.settings import DEFAULT, SPECIAL_TOKENS_IN_PAIR, QASettings
from fairseq_ext.tokenizer.hf_adapter import HFTokenizerAdapter  # noqa: F401  (also importable from here)

BOS, PAD, EOS = 0, 1, 2  # RoBERTa's <s>, <pad>, </s>: the same indices in fairseq and HF
CONTEXT_OFFSET_AFTER_QUESTION = 3
ENCODE_CHUNK = 1000  # questions tokenized per batch


@dataclass
class QAFeature:
    example_index: int
    input_ids: list[int]
    start_position: int  # 0 (<s>) when the window holds no (complete) answer
    end_position: int
    token_offsets: list[Optional[tuple[int, int]]]  # context char span; None for question/special tokens
    context_start: int  # index of the first context token


@dataclass
class _TokenizedContext:
    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, text: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]]) -> _TokenizedContext:
        return cls(text=text, ids=list(ids), offsets=[tuple(o) for o in offsets],
                   starts=np.array([o[0] for o in offsets], dtype=np.int64),
                   ends=np.array([o[1] for o in offsets], dtype=np.int64))


def build_features(examples: Sequence[SquadExample], tokenizer, max_seq_length: int = DEFAULT.max_seq_length,
                   doc_stride: int = DEFAULT.doc_stride, max_query_length: int = DEFAULT.max_query_length,
                   progress: bool = False) -> list[QAFeature]:
    """Features of all examples in order; every example gets at least one window.

    Questions are left-stripped and cut to ``max_query_length`` tokens; contexts are split into windows
    of ``max_seq_length - len(question) - 4`` tokens overlapping by ``doc_stride`` tokens.
    """
    # the settings' ranges and the window rule, whoever calls
    QASettings(max_seq_length=max_seq_length, doc_stride=doc_stride, max_query_length=max_query_length)
    features = []
    with tqdm(total=len(examples), desc="features", unit="question", disable=not progress) as bar:
        for chunk_start in range(0, len(examples), ENCODE_CHUNK):
            chunk = examples[chunk_start:chunk_start + ENCODE_CHUNK]
            # the questions of a paragraph follow each other and share its context: tokenize it once
            context_texts, context_index = [], []
            for example in chunk:
                if not context_texts or example.context != context_texts[-1]:
                    context_texts.append(example.context)
                context_index.append(len(context_texts) - 1)
            contexts = [_TokenizedContext.of(text, ids, offsets)
                        for text, (ids, offsets) in zip(context_texts, _encode_all(tokenizer, context_texts))]
            questions = _encode_all(tokenizer, [example.question.lstrip() for example in chunk])
            for offset, (example, (question_ids, _)) in enumerate(zip(chunk, questions)):
                question_ids = list(question_ids[:max_query_length])
                context = contexts[context_index[offset]]
                features.extend(_windows(chunk_start + offset, question_ids, context,
                                         _answer_token_span(example, context), max_seq_length, doc_stride))
            bar.update(len(chunk))
    return features


def _encode_all(tokenizer, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Batch encoding (parallel in Rust) when the tokenizer offers it."""
    encode_batch = getattr(tokenizer, "encode_batch_with_offsets", None)
    if encode_batch is not None:
        return encode_batch(texts)
    return [tokenizer.encode_with_offsets(text) for text in texts]


def _answer_token_span(example: SquadExample, context: _TokenizedContext) -> Optional[tuple[int, int]]:
    """Context token indices (first, last) covering the first located gold answer, whitespace around it
    excluded; None without one (unanswerable, unlabelled, or no answer found in the context)."""
    answer = next((answer for answer in example.answers if answer.located), None)
    if example.is_impossible or answer is None:
        return None
    start_char, end_char = answer.start, answer.start + len(answer.text)
    while start_char < end_char and example.context[start_char].isspace():
        start_char += 1
    while end_char > start_char and example.context[end_char - 1].isspace():
        end_char -= 1
    # run_qa's rule: the last token starting at or before the answer, the first ending at or after it
    first = int(np.searchsorted(context.starts, start_char, side="right")) - 1
    last = int(np.searchsorted(context.ends, end_char, side="left"))
    if start_char == end_char or first < 0 or last >= len(context.ids):
        raise UserInputError(f"question {example.qid}: answer {answer.text!r} at {answer.start} lies outside "
                             "its context (load the data with answer alignment)")
    return first, last


def _windows(example_index: int, question_ids: list[int], context: _TokenizedContext,
             answer_span: Optional[tuple[int, int]], max_seq_length: int, doc_stride: int) -> list[QAFeature]:
    """HF tokenizers' overflow windows: one every ``window - doc_stride`` tokens until the end is reached."""
    window = max_seq_length - len(question_ids) - SPECIAL_TOKENS_IN_PAIR
    prefix = [BOS, *question_ids, EOS, EOS]
    prefix_offsets = [None] * len(prefix)
    context_start = len(question_ids) + CONTEXT_OFFSET_AFTER_QUESTION
    n_tokens = len(context.ids)
    features = []
    window_start = 0
    while True:
        window_end = min(window_start + window, n_tokens)
        start_position = end_position = 0
        if answer_span is not None and window_start <= answer_span[0] and answer_span[1] < window_end:
            start_position = context_start + answer_span[0] - window_start
            end_position = context_start + answer_span[1] - window_start
        features.append(QAFeature(
            example_index=example_index,
            input_ids=prefix + context.ids[window_start:window_end] + [EOS],
            start_position=start_position,
            end_position=end_position,
            token_offsets=prefix_offsets + context.offsets[window_start:window_end] + [None],
            context_start=context_start,
        ))
        if window_end == n_tokens:
            return features
        window_start += window - doc_stride
