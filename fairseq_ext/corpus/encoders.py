"""Block encoders: exact GPT-2 BPE of many lines at once, at the speed of a dictionary lookup; SentencePiece
by the sentencepiece library's own batch encoding."""

from __future__ import annotations

import re
from itertools import chain, compress, repeat
from operator import is_not, not_
from typing import Iterable, Optional, Sequence

import numpy as np
import regex

from fairseq_ext.tokenizer.gpt2 import GPT2_SPLIT, Gpt2Bpe
from fairseq_ext.tokenizer.spm import SentencePiece

NEWLINE_ID = 198  # GPT-2's token for a lone "\n": in a block of joined stripped lines, only a line break
CACHE_ENTRIES = 1 << 19  # per worker and cache (~100 MB when full); cleared when full: bounded memory
# A space that does not start a new GPT-2 word (next char is whitespace): see BlockEncoder. The stdlib
# pattern is a fast pre-check (its \s, str.isspace, includes every \s of `regex`).
_SPACE_NOT_BEFORE_WORD = regex.compile(r" (?!\S)")
_SPACE_BEFORE_SPACE = re.compile(r" \s")


class BlockEncoder:
    """Encodes blocks of lines exactly as fairseq's encoder: ``line.strip()``, then
    ``fairseq.data.encoders.gpt2_bpe_utils.Encoder.encode``, at the speed of a dictionary lookup.

    Why the shortcut is exact. The non-empty stripped lines of a block are joined with ``\\n`` and cut at
    every space followed by a non-whitespace char (``\\s``/``\\S`` of fairseq's regex). At such a space
    GPT2_SPLIT always ends a word (its letter/digit/other classes exclude whitespace, and a whitespace
    run stops before the space because of ``\\s+(?!\\S)``) and starts the next one there; the pattern
    has no look-behind, so each piece is split the same alone as in context. Pieces repeat, so each one
    is split once (fairseq's regex, same module and pattern) and BPE-encoded once (HF ``tokenizers``,
    the same merges), then cached. A line break between two stripped lines sits between non-whitespace
    chars (every ``\\s`` char is ``str.isspace``), so it is always the lone token 198, which GPT-2 never
    produces inside a line (lines hold no ``\\n``): it marks where each line's ids end.
    """

    strips_lines = True  # gets each line stripped, as fairseq's encoder strips it

    def __init__(self, bpe: Gpt2Bpe, cache_entries: int = CACHE_ENTRIES):
        self.bpe = bpe
        self.cache_entries = cache_entries
        self.piece_cache: dict = {}  # piece (its leading space implied) -> format_ids(ids of " " + piece)
        self.word_cache: dict[str, list[int]] = {}  # GPT2_SPLIT word -> BPE ids

    def format_ids(self, ids: list[int]):
        """What a piece's ids are cached as, with NEWLINE_ID marking a line end."""
        raise NotImplementedError

    def _word_ids(self, texts: Iterable[str]) -> list[list[int]]:
        """The GPT-2 ids of each text (fairseq's Encoder.encode), through the word cache."""
        words_of = [GPT2_SPLIT.findall(text) for text in texts]
        cache = self.word_cache
        if len(cache) > self.cache_entries:
            cache.clear()
        unknown = list({word for words in words_of for word in words if word not in cache})
        if unknown:
            cache.update(zip(unknown, self.bpe.encode_words(unknown)))
        return [list(chain.from_iterable(cache[word] for word in words)) for words in words_of]

    def _pieces(self, text: str) -> list[str]:
        pieces = text.split(" ")
        if _SPACE_BEFORE_SPACE.search(text) is None:
            return pieces
        # A space followed by whitespace belongs to the piece before it: merge from the right so that
        # runs of them chain up.
        merged: list[Optional[str]] = list(pieces)
        spaces_seen, piece_index = 0, 0
        starts = []
        for match in _SPACE_NOT_BEFORE_WORD.finditer(text):
            piece_index += text.count(" ", spaces_seen, match.start()) + 1
            spaces_seen = match.start() + 1
            starts.append(piece_index)  # the piece after this space must join the one before it
        for index in reversed(starts):
            merged[index - 1] = f"{merged[index - 1]} {merged[index]}"
            merged[index] = None
        return list(compress(merged, map(is_not, merged, repeat(None))))

    def encode_joined(self, lines: Sequence[str]) -> list:
        """The cached values of the pieces of the non-empty stripped ``lines`` joined by ``\\n``."""
        pieces = self._pieces("\n".join(lines))
        first = pieces[0]
        pieces[0] = ""  # stands for the first piece, which has no leading space: set below
        cache = self.piece_cache
        values = list(map(cache.get, pieces))  # the hot loop: C-level lookups only
        if None in values[1:]:
            if len(cache) + len(values) > self.cache_entries:
                cache.clear()
                missing = set(pieces[1:])
            else:
                missing = set(compress(pieces, map(not_, values)))
            missing.discard("")
            missing = list(missing)
            for piece, ids in zip(missing, self._word_ids(" " + piece for piece in missing)):
                cache[piece] = self.format_ids(ids)
            values = list(map(cache.get, pieces))
        values[0] = self.format_ids(self._word_ids([first])[0])
        return values


class TextBlockEncoder(BlockEncoder):
    """Lines of space-separated GPT-2 ids, as fairseq's encoder prints them."""

    def format_ids(self, ids: list[int]) -> str:
        return " ".join("\n" if token == NEWLINE_ID else str(token) for token in ids)

    def encode_lines(self, stripped: Sequence[str]) -> str:
        """One output line per stripped input line (empty for an empty one), each ended by a newline."""
        nonempty = [line for line in stripped if line]
        if not nonempty:
            return "\n" * len(stripped)
        encoded = " ".join(self.encode_joined(nonempty)).replace(" \n ", "\n") + "\n"
        if len(nonempty) == len(stripped):
            return encoded
        rows = iter(encoded.split("\n"))
        return "".join(f"{next(rows)}\n" if line else "\n" for line in stripped)


class IdBlockEncoder(BlockEncoder):
    """Each line's GPT-2 ids followed by NEWLINE_ID as its end marker (where ``eos`` goes in a ``.bin``)."""

    _MARKER = np.array([NEWLINE_ID], dtype=np.int32).tobytes()

    def format_ids(self, ids: list[int]) -> bytes:
        return np.array(ids, dtype=np.int32).tobytes()  # so that a block is one bytes join, no Python loop

    def encode_lines(self, stripped: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(all ids, end markers included, int32; the length of each line's sequence, marker included)."""
        nonempty = [line for line in stripped if line]
        if nonempty:
            data = np.frombuffer(b"".join(self.encode_joined(nonempty)) + self._MARKER, dtype=np.int32)
            ends = np.flatnonzero(data == NEWLINE_ID)
            sizes = np.diff(ends, prepend=-1)
        else:
            data, ends, sizes = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        if len(nonempty) < len(stripped):  # kept empty lines: a sequence of just the marker each
            empty = [i for i, line in enumerate(stripped) if not line]
            before = np.cumsum([bool(line) for line in stripped])[empty]  # non-empty lines before each
            data = np.insert(data, np.concatenate([[0], ends + 1])[before], NEWLINE_ID)
            sizes = np.insert(sizes, before, 1)
        return data, sizes


class SentencePieceBlockEncoder:
    """Lines encoded as ``SentencePieceProcessor.encode(line, out_type=str)`` (the reference) followed by
    fairseq-preprocess's split of the space-joined pieces: ids come from sentencepiece's batch encoding,
    and only a line with an unknown piece, whose text may hold characters Python splits on, is split as
    fairseq splits it. Lines are encoded as they are, not stripped: Python's strip() removes characters
    (\\x85, \\x1c...) that the model's normalization keeps as pieces."""

    strips_lines = False

    def __init__(self, tokenizer: SentencePiece):
        self.tokenizer = tokenizer
        self.processor = tokenizer.processor
        self.unk_id = self.processor.unk_id()
        self.marker = tokenizer.vocab_size  # no piece has this id: the end of a line (eos in a .bin)

    def line_ids(self, stripped: Sequence[str]) -> list[list[int]]:
        rows = self.tokenizer.encode_batch(stripped)
        for index, ids in enumerate(rows):
            if self.unk_id in ids:
                # what fairseq-preprocess's tokenize_line makes of the piece text, piece by piece
                tokens = " ".join(self.tokenizer.encode_pieces(stripped[index])).split()
                rows[index] = [self.processor.piece_to_id(token) for token in tokens]
        return rows

    def encode_lines(self, stripped: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(all ids, each line's followed by the marker, int32; each line's length, marker included)."""
        rows = self.line_ids(stripped)
        marker = [self.marker]
        data = np.fromiter(chain.from_iterable(chain(row, marker) for row in rows), dtype=np.int32)
        return data, np.array([len(row) + 1 for row in rows], dtype=np.int64)


class SentencePieceTextEncoder(SentencePieceBlockEncoder):
    """Lines of space-separated pieces, as ``spm_encode --output_format=piece`` writes them."""

    def encode_lines(self, stripped: Sequence[str]) -> str:
        pieces = self.processor.encode(list(stripped), out_type=str, num_threads=1)
        return "".join(" ".join(line) + "\n" for line in pieces)


def filter_rows(columns: Sequence[Sequence[str]], keep_empty: bool,
                strip: bool = True) -> tuple[list[list[str]], int]:
    """Strips every line (unless not ``strip``); without ``keep_empty`` drops each row (a line of every
    input) that has a blank line, as fairseq's encoder does. Returns the kept columns and the number of
    rows dropped."""
    stripped = [[line.strip() for line in column] for column in columns]
    lines = stripped if strip else [list(column) for column in columns]
    if keep_empty:
        return lines, 0
    keep = [all(row) for row in zip(*stripped)]
    if all(keep):
        return lines, 0
    kept = [[line for line, k in zip(column, keep) if k] for column in lines]
    return kept, keep.count(False)
