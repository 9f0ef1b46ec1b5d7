"""Benchmark: SQuAD training features (windows + labels) from fairseq_ext.squad.build_features vs
transformers' run_qa ``prepare_train_features`` with a RoBERTa fast tokenizer, on the shared SQuAD data.

The reference is run_qa's preparation as written there (batches of 1000 like ``datasets.map``,
``truncation="only_second"``, overflowing windows with ``stride``), without padding, so the reference
does no more work than needed. Tests reuse ``reference_tokenizer`` and ``run_qa_train_features`` to
check that both produce the same windows and labels.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Sequence

import numpy as np

from fairseq_ext.squad import SquadExample, build_features, load_squad
from fairseq_ext.tokenizer import DictionaryTokenizer, Gpt2Bpe

MAX_SEQ_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH = 384, 128, 64
RUN_QA_BATCH_SIZE = 1000  # datasets.map(batched=True)'s default batch


def reference_tokenizer(gpt2_bpe_dir: pathlib.Path):
    """RobertaTokenizerFast over the GPT-2 files (vocab.json = encoder.json, merges.txt = vocab.bpe):
    ids are GPT-2 ids, its <s>/</s>/<pad> come after them."""
    from transformers import RobertaTokenizerFast

    vocab = json.loads((gpt2_bpe_dir / "encoder.json").read_text(encoding="utf-8"))
    lines = (gpt2_bpe_dir / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    return RobertaTokenizerFast(vocab=vocab, merges=merges)


def reference_to_fairseq_ids(tokenizer, dictionary_bpe: DictionaryTokenizer) -> np.ndarray:
    """Maps the reference tokenizer's ids to fairseq dictionary indices (specials to RoBERTa's 0/1/2)."""
    lookup = np.concatenate([dictionary_bpe.lookup,
                             np.full(len(tokenizer) - len(dictionary_bpe.lookup), -1, dtype=np.int64)])
    lookup[tokenizer.cls_token_id], lookup[tokenizer.pad_token_id], lookup[tokenizer.sep_token_id] = 0, 1, 2
    return lookup


def run_qa_train_features(tokenizer, examples: Sequence[SquadExample], max_seq_length: int = MAX_SEQ_LENGTH,
                          doc_stride: int = DOC_STRIDE, padding=False, labels: bool = True) -> list[dict]:
    """transformers examples/pytorch/question-answering/run_qa.py ``prepare_train_features`` (right padding
    side; ``padding``: False, or "max_length" as run_qa pads by default): one dict per window with
    example_index, input_ids, offsets, sequence_ids, start_position, end_position. ``labels=False``:
    ``prepare_validation_features`` (no positions; offsets outside the context are None)."""
    features = []
    for batch_start in range(0, len(examples), RUN_QA_BATCH_SIZE):
        batch = examples[batch_start:batch_start + RUN_QA_BATCH_SIZE]
        tokenized = tokenizer([example.question.lstrip() for example in batch],
                              [example.context for example in batch], truncation="only_second",
                              max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True,
                              return_offsets_mapping=True, padding=padding)
        for i, offsets in enumerate(tokenized["offset_mapping"]):
            input_ids = tokenized["input_ids"][i]
            cls_index = input_ids.index(tokenizer.cls_token_id)
            sequence_ids = tokenized.sequence_ids(i)
            example = batch[tokenized["overflow_to_sample_mapping"][i]]
            start_position = end_position = cls_index
            if not labels:
                offsets = [o if sequence_ids[k] == 1 else None for k, o in enumerate(offsets)]
            elif example.answers:
                start_char = example.answers[0].start
                end_char = start_char + len(example.answers[0].text)
                token_start_index = 0
                while sequence_ids[token_start_index] != 1:
                    token_start_index += 1
                token_end_index = len(input_ids) - 1
                while sequence_ids[token_end_index] != 1:
                    token_end_index -= 1
                if offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char:
                    while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                        token_start_index += 1
                    start_position = token_start_index - 1
                    while offsets[token_end_index][1] >= end_char:
                        token_end_index -= 1
                    end_position = token_end_index + 1
            features.append({"example_index": batch_start + tokenized["overflow_to_sample_mapping"][i],
                             "input_ids": input_ids, "offsets": offsets, "sequence_ids": sequence_ids,
                             "start_position": start_position, "end_position": end_position})
    return features


def _best_time(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(work_dir: pathlib.Path, shared_dir: pathlib.Path, quick: bool = False) -> list[dict]:
    from fairseq.data import Dictionary

    gpt2_bpe_dir = shared_dir / "gpt2_bpe"
    data = load_squad(shared_dir / "data" / "squad2" / "squad2-dev-part.json")
    examples = data.examples[:1000] if quick else data.examples
    symbols = Dictionary.load(str(gpt2_bpe_dir / "dict.txt")).symbols
    tokenizer = Gpt2Bpe.from_dir(gpt2_bpe_dir).to_dictionary(symbols)
    reference = reference_tokenizer(gpt2_bpe_dir)
    repeats = 1 if quick else 3

    ours_s, ours = _best_time(lambda: build_features(examples, tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE,
                                                     MAX_QUERY_LENGTH), repeats)
    reference_s, theirs = _best_time(lambda: run_qa_train_features(reference, examples), repeats)
    return [{
        "benchmark": "squad_features",
        "ours": "fairseq_ext.squad.build_features (DictionaryTokenizer)",
        "reference": "transformers run_qa prepare_train_features (RobertaTokenizerFast)",
        "ours_s": ours_s,
        "reference_s": reference_s,
        "ratio": reference_s / ours_s,
        "questions": len(examples),
        "windows_ours": len(ours),
        "windows_reference": len(theirs),
    }]
