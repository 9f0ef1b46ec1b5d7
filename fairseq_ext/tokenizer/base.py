"""The tokenizer interface: what corpus preparation, SQuAD features and the export need of a tokenizer.

A tokenizer lives in a directory of files (``files``, plus the fairseq ``dict.txt`` of its symbols) and
turns text into *vocabulary ids* with character offsets. ``vocab_symbols()`` names each vocabulary id as
``dict.txt`` writes it (GPT-2: the id's decimal string; SentencePiece: the piece), which is how
``DictionaryTokenizer`` maps ids to fairseq dictionary indices, as ``fairseq-preprocess`` would.
No fairseq or torch import here.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Sequence, Union

if TYPE_CHECKING:
    import numpy as np

PathLike = Union[str, os.PathLike]
DICTIONARY_FILE = "dict.txt"


class Tokenizer(ABC):
    kind: ClassVar[str]  # recorded in data-bin directories: later stages refuse another kind
    files: ClassVar[tuple[str, ...]]  # the files of its directory, dict.txt aside

    @classmethod
    def recognises(cls, directory: Path) -> bool:
        return all((Path(directory) / name).is_file() for name in cls.files)

    @classmethod
    @abstractmethod
    def from_dir(cls, directory: PathLike) -> Tokenizer:
        ...

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        ...

    @abstractmethod
    def vocab_symbols(self) -> list[str]:
        """The dict.txt symbol of each vocabulary id, in id order."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Vocabulary ids of ``text``, as the reference tokenizer gives them."""

    @abstractmethod
    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Vocabulary ids and, for each, its (start, end) character span in ``text`` (no leading space)."""

    def to_dictionary(self, symbols: Sequence[str], unk_index: int = 3) -> DictionaryTokenizer:
        return DictionaryTokenizer(self, symbols, unk_index)


class DictionaryTokenizer:
    """A tokenizer whose ids are indices of a fairseq dictionary (``symbols`` in index order, specials
    included, e.g. ``dict.txt`` read by ``read_dictionary``). Vocabulary entries absent from it map to
    ``unk_index``, as ``fairseq-preprocess`` does."""

    def __init__(self, tokenizer: Tokenizer, symbols: Sequence[str], unk_index: int = 3):
        self.tokenizer = tokenizer
        self.unk_index = unk_index
        self.lookup = vocab_to_dictionary(tokenizer.vocab_symbols(), symbols, unk_index)

    def to_indices(self, vocab_ids: Sequence[int]) -> np.ndarray:
        import numpy as np

        return self.lookup[np.asarray(vocab_ids, dtype=np.int64)]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = self.tokenizer.encode_with_offsets(text)
        return self.to_indices(ids).tolist(), offsets


def vocab_to_dictionary(vocab_symbols: Sequence[str], symbols: Sequence[str],
                        unk_index: int = 3) -> np.ndarray:
    """For each vocabulary id, its index in a fairseq dictionary, like ``Dictionary.index(symbol)``: the
    symbol is looked up exactly (``"007"`` is not ``"7"``), and one listed twice (``#fairseq:overwrite``)
    resolves to its last index."""
    import numpy as np  # here: the tokenizers and bpe-encode start faster without it

    indices = {symbol: index for index, symbol in enumerate(symbols)}
    return np.array([indices.get(symbol, unk_index) for symbol in vocab_symbols], dtype=np.int64)
