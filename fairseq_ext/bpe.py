"""GPT-2 byte-level BPE with the ids of fairseq's ``gpt2_bpe`` encoder, run by HF ``tokenizers`` (Rust).

This is the project's one tokenizer piece: corpus encoding, SQuAD features and the HF export all go
through it, so a SentencePiece variant only has to offer the same methods. No fairseq import here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from fairseq_ext.cli import UserInputError

BPE_FILES = ("encoder.json", "vocab.bpe")
PathLike = Union[str, os.PathLike]


def resolve_gpt2_bpe_dir(path: Optional[PathLike] = None, need_dict: bool = False) -> Path:
    """The directory holding encoder.json and vocab.bpe (and dict.txt if asked): ``path`` or $GPT2_BPE_DIR."""
    if path is None:
        path = os.environ.get("GPT2_BPE_DIR")
    if not path:
        raise UserInputError("no GPT-2 BPE directory given: pass --gpt2-bpe DIR or set GPT2_BPE_DIR "
                             "(scripts/get_gpt2_bpe.sh DIR fetches the files)")
    directory = Path(path)
    names = BPE_FILES + (("dict.txt",) if need_dict else ())
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise UserInputError(f"{directory}: missing {', '.join(missing)} "
                             "(scripts/get_gpt2_bpe.sh DIR fetches the official files)")
    return directory


class Gpt2Bpe:
    """Encodes text to GPT-2 token ids exactly as ``fairseq.data.encoders.gpt2_bpe_utils.Encoder``."""

    def __init__(self, encoder_json: PathLike, vocab_bpe: PathLike):
        try:
            bpe = models.BPE.from_file(str(encoder_json), str(vocab_bpe))
        except Exception as err:  # tokenizers raises a bare Exception with the parse error
            raise UserInputError(f"cannot read GPT-2 BPE files {encoder_json}, {vocab_bpe}: {err}") from err
        tokenizer = Tokenizer(bpe)
        # GPT-2's split regex and byte-to-unicode map, no prefix space: what fairseq's encoder does.
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        self.tokenizer = tokenizer

    @classmethod
    def from_dir(cls, path: Optional[PathLike] = None) -> Gpt2Bpe:
        directory = resolve_gpt2_bpe_dir(path)
        return cls(directory / "encoder.json", directory / "vocab.bpe")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encodes many texts in parallel (Rust threads: RAYON_NUM_THREADS caps them)."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and, for each, the (start, end) character span in ``text``, leading spaces trimmed."""
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        return enc.ids, trim_leading_space(text, enc.offsets)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


def trim_leading_space(text: str, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte-level BPE tokens carry the space before a word; answer spans must not start with it."""
    trimmed = []
    for start, end in offsets:
        while start < end and text[start].isspace():
            start += 1
        trimmed.append((start, end))
    return trimmed


class DictionaryBpe:
    """GPT-2 BPE whose ids are indices of a fairseq dictionary (``dict.txt`` lists GPT-2 ids as symbols).

    ``symbols`` is the dictionary's symbol list in index order, specials included, e.g.
    ``fairseq.data.Dictionary.load(path).symbols``. GPT-2 tokens absent from it map to ``unk_index``,
    as ``fairseq-preprocess`` does.
    """

    def __init__(self, bpe: Gpt2Bpe, symbols: Sequence[str], unk_index: int = 3):
        self.bpe = bpe
        self.unk_index = unk_index
        lookup = np.full(bpe.vocab_size, unk_index, dtype=np.int64)
        for index, symbol in enumerate(symbols):
            if symbol.isdigit() and int(symbol) < bpe.vocab_size:
                lookup[int(symbol)] = index
        self.lookup = lookup

    def to_indices(self, gpt2_ids: Sequence[int]) -> np.ndarray:
        return self.lookup[np.asarray(gpt2_ids, dtype=np.int64)]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = self.bpe.encode_with_offsets(text)
        return self.to_indices(ids).tolist(), offsets
