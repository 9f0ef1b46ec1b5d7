"""The one check of a conversion, in either direction: the HF tokenizer and model against the fairseq
encoding and model on real text (masked LM, encoder) or question/context pairs (span QA). Token ids must
be equal (alias ids counted as ``<unk>``) and outputs agree within a tolerance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from fairseq_ext.errors import UserInputError
from fairseq_ext.export.config import DEFAULT_TOLERANCE, ENCODER, SPAN_QA
from fairseq_ext.export.fairseq_model import FairseqRoberta
from fairseq_ext.export.tokenizer_files import ExportVocabulary

# Real text with capitals, digits, punctuation, non-ASCII, odd spacing, and Chinese (SentencePiece models).
SAMPLE_SENTENCES = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region "
    "in France.",
    "Paris is the capital and most populous city of France, with an estimated population of 2,102,650 "
    "residents as of 1 January 2023.",
    "Beyoncé Giselle Knowles-Carter (born September 4, 1981) is an American singer, songwriter and actress.",
    "  Leading spaces, \"quotes\", an em dash — and a newline\nshould tokenize identically. ",
    "Photosynthesis converts light energy into chemical energy; its overall equation is "
    "6CO2 + 6H2O → C6H12O6 + 6O2.",
    "北京大学创建于1898年，初名京师大学堂，是中国近现代第一所国立综合性大学。",
)
SAMPLE_QUESTIONS = (
    ("In what country is Normandy located?", SAMPLE_SENTENCES[0]),
    ("When was Beyoncé born?", SAMPLE_SENTENCES[2]),
    ("  What does photosynthesis convert light energy into?", SAMPLE_SENTENCES[4]),
    ("How many residents did Paris have in 2023?", SAMPLE_SENTENCES[1]),
    ("北京大学创建于哪一年？", SAMPLE_SENTENCES[5]),
)


@dataclass
class Verification:
    sequences: int
    tokens: int
    alias_tokens: int  # tokens absent from the dictionary (alias ids on the HF side, <unk> in fairseq)
    id_mismatches: list[str]
    max_difference: float  # largest |output difference| (logits, or features of an encoder)
    tolerance: float
    outputs: str = "logit"

    @property
    def ok(self) -> bool:
        return not self.id_mismatches and self.max_difference <= self.tolerance

    def summary(self) -> str:
        ids = ("ids identical" if not self.id_mismatches
               else f"ids differ in {len(self.id_mismatches)} sequence(s): {'; '.join(self.id_mismatches)}")
        return (f"{self.sequences} sequences, {self.tokens} tokens ({self.alias_tokens} absent from the "
                f"dictionary): {ids}; max |{self.outputs} difference| {self.max_difference:.2e} "
                f"(tolerance {self.tolerance:.0e})")


class VerificationError(Exception):
    def __init__(self, verification: Verification):
        super().__init__(verification.summary())
        self.verification = verification


def fairseq_ids(encoder, text: str, pair: Optional[str] = None) -> list[int]:
    """fairseq's encoding of a sequence (``<s> a </s>``) or pair (``<s> a </s></s> b </s>``); ``encoder``
    gives dictionary indices (``encode_with_offsets``, e.g. a tokenizer's to_dictionary())."""
    ids = [0, *encoder.encode_with_offsets(text)[0], 2]
    if pair is not None:
        ids += [2, *encoder.encode_with_offsets(pair)[0], 2]
    return ids


def hf_outputs(kind: str, model, encoded: dict, dictionary_size: int) -> list[torch.Tensor]:
    with torch.no_grad():
        output = model(**encoded)
    if kind == SPAN_QA:
        return [output.start_logits, output.end_logits]
    if kind == ENCODER:
        return [output.last_hidden_state]
    return [output.logits[..., :dictionary_size]]


def compare(tokenizer, hf_model, roberta: FairseqRoberta, fairseq_encoder, vocabulary: ExportVocabulary,
            tolerance: float = DEFAULT_TOLERANCE) -> Verification:
    """The HF side (tokenizer, model in eval mode) against the fairseq side (model, encoder) on the
    sample inputs of the model's kind that fit its positions (a small vocabulary, e.g. a Chinese
    SentencePiece model's, spells English in many pieces)."""
    from fairseq.data import data_utils

    if roberta.kind == SPAN_QA:
        inputs = [(question.lstrip(), context) for question, context in SAMPLE_QUESTIONS]
        expected = [fairseq_ids(fairseq_encoder, q, c) for q, c in inputs]
    else:
        inputs = [(text,) for text in SAMPLE_SENTENCES]
        expected = [fairseq_ids(fairseq_encoder, text) for (text,) in inputs]
    fitting = [index for index, ids in enumerate(expected) if len(ids) <= roberta.max_positions]
    if not fitting:
        raise UserInputError(f"no verification input fits the model's {roberta.max_positions} positions")
    inputs, expected = [inputs[i] for i in fitting], [expected[i] for i in fitting]
    encoded = tokenizer(*map(list, zip(*inputs)), padding=True, return_tensors="pt")
    encoded = {name: encoded[name] for name in ("input_ids", "attention_mask")}

    mismatches, lengths = [], []
    for index, (hf_row, mask, fairseq_row) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"],
                                                            expected)):
        hf_ids = vocabulary.as_fairseq_indices(hf_row[mask.bool()].tolist())
        lengths.append(len(hf_ids))
        if hf_ids != fairseq_row:
            first = next((i for i, (a, b) in enumerate(zip(hf_ids, fairseq_row)) if a != b),
                         min(len(hf_ids), len(fairseq_row)))
            mismatches.append(f"#{index} from token {first}: HF {hf_ids[first:first + 5]} "
                              f"fairseq {fairseq_row[first:first + 5]}")

    max_difference = float("inf")
    if not mismatches:
        batch = data_utils.collate_tokens([torch.tensor(ids) for ids in expected], pad_idx=1)
        real = encoded["attention_mask"].bool()
        max_difference = max(
            float((hf[real] - fs[real]).abs().max())
            for hf, fs in zip(hf_outputs(roberta.kind, hf_model, encoded, vocabulary.dictionary_size),
                              roberta.outputs(batch)))
    aliases = sum(int((row[mask.bool()] >= vocabulary.dictionary_size).sum())
                  for row, mask in zip(encoded["input_ids"], encoded["attention_mask"]))
    return Verification(sequences=len(expected), tokens=sum(lengths), alias_tokens=aliases,
                        id_mismatches=mismatches, max_difference=max_difference, tolerance=tolerance,
                        outputs="feature" if roberta.kind == ENCODER else "logit")
