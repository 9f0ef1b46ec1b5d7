"""A Hugging Face fast tokenizer seen as one of ours: model ids and character offsets, as
squad.build_features takes them."""

from __future__ import annotations

from tokenizers import Tokenizer

from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.gpt2 import trim_leading_space
from fairseq_ext.tokenizer.spm import METASPACE, place_lone_metaspace


class HFTokenizerAdapter:
    """A transformers fast tokenizer whose ids are the model's (fairseq dictionary) indices, seen as a
    build_features tokenizer: the same ids and offsets as DictionaryTokenizer for the same vocabulary.

    Offsets come from the tokenizer's backend without its post-processor, then get the same leading-space
    trimming as fairseq_ext.tokenizer.gpt2 (RobertaProcessing's own trimming differs on whitespace-only
    tokens) and, for a SentencePiece (XLM-R) tokenizer, the same placement of lone ``▁`` pieces as
    fairseq_ext.tokenizer.spm.
    """

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "is_fast", False):
            raise UserInputError(f"{type(tokenizer).__name__} is not a fast tokenizer (offsets need one)")
        self.tokenizer = tokenizer
        self.backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.backend.post_processor = None

    @staticmethod
    def _offsets(text: str, encoding) -> list[tuple[int, int]]:
        offsets = trim_leading_space(text, encoding.offsets)
        return place_lone_metaspace(offsets, [token == METASPACE for token in encoding.tokens])

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        encoding = self.backend.encode(text, add_special_tokens=False)
        return encoding.ids, self._offsets(text, encoding)

    def encode_batch_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        encodings = self.backend.encode_batch(texts, add_special_tokens=False)
        return [(encoding.ids, self._offsets(text, encoding)) for text, encoding in zip(texts, encodings)]
