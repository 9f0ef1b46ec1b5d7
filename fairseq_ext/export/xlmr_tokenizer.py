"""The Hugging Face tokenizer of a SentencePiece model: XLM-R's (transformers' XLMRobertaTokenizer, a
``tokenizers`` Unigram model), whose ids are the fairseq dictionary's indices.

Its vocabulary is the fairseq dictionary in index order (``<s> <pad> </s> <unk>``, the pieces, ``<mask>``),
each piece with its SentencePiece score, and its normalizer is the model's own (the precompiled NFKC
map), so that it segments as ``SentencePieceProcessor.encode`` does and names the pieces by their fairseq
index. What that layout cannot express is refused with a one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.dictionary import MASK, SPECIALS, check_roberta_symbols

UNIGRAM = 1  # sentencepiece's TrainerSpec.ModelType
# a dictionary symbol that is no piece of the model (fairseq never produces it from text): never chosen
ABSENT_PIECE_SCORE = -1e4


def read_model_proto(model_file: Path):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(Path(model_file).read_bytes())
    except Exception as err:  # protobuf's DecodeError
        raise UserInputError(f"{model_file}: not a SentencePiece model ({err})") from None
    return proto


def xlmr_tokenizer(model_file: Path, symbols: Sequence[str], max_positions: int):
    """transformers' XLMRobertaTokenizer for ``symbols`` (the fairseq dictionary with ``<mask>``)."""
    from transformers import AddedToken, XLMRobertaTokenizer

    proto = read_model_proto(model_file)
    if proto.trainer_spec.model_type != UNIGRAM:
        model_type = proto.trainer_spec.ModelType.Name(proto.trainer_spec.model_type)
        raise UserInputError(f"{model_file}: a SentencePiece {model_type} model; the Hugging Face export "
                             "supports unigram models (XLM-R's, train_spm.py's default)")
    normalizer = proto.normalizer_spec
    if not normalizer.add_dummy_prefix or not normalizer.remove_extra_whitespaces \
            or proto.trainer_spec.byte_fallback:
        raise UserInputError(f"{model_file}: XLM-R's tokenizer needs add_dummy_prefix and "
                             "remove_extra_whitespaces on and byte_fallback off")
    check_roberta_symbols(symbols, "the dictionary")
    scores = {piece.piece: piece.score for piece in proto.pieces if piece.type in (1, 4)}  # NORMAL, USER
    missing = [piece for piece in scores if piece not in set(symbols)]
    if missing:
        raise UserInputError(f"{len(missing)} pieces of {model_file} are not in the dictionary (e.g. "
                             f"{missing[0]!r}): export needs the dict.txt that train_spm.py or XLM-R ships")
    vocab = [(symbol, 0.0 if symbol in SPECIALS or symbol == MASK else scores.get(symbol, ABSENT_PIECE_SCORE))
             for symbol in symbols]
    # <mask> swallows the space before it, as fairseq's fill_mask encodes "x <mask>" (and xlm-roberta-base)
    mask = AddedToken(MASK, lstrip=True, rstrip=False, normalized=False, special=True)
    charsmap = normalizer.precompiled_charsmap or None
    return XLMRobertaTokenizer(vocab=vocab, _spm_precompiled_charsmap=charsmap, mask_token=mask,
                               model_max_length=max_positions)
