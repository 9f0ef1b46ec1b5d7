"""Block encoders: exact GPT-2 BPE of many lines at once, at the speed of a dictionary lookup; SentencePiece
by the sentencepiece library's own batch encoding. The text ones here; those of binary datasets in
indexed.py, with numpy."""

from __future__ import annotations

import re
from itertools import chain, compress, repeat
from operator import is_, is_not
from typing import Iterable, Optional, Sequence

import regex

from fairseq_ext.tokenizer.gpt2 import GPT2_SPLIT, Gpt2Bpe
from fairseq_ext.tokenizer.spm import SentencePiece

NEWLINE_ID = 198  # GPT-2's token for a lone "\n": here only ever a line end (lines hold no "\n")
CACHE_ENTRIES = 1 << 19  # per worker and cache (~100 MB when full); cleared when full: bounded memory
LINE_JOIN = " \n"  # see BlockEncoder
# A space that does not start a new GPT-2 word (the next char is whitespace, but not the "\n" of a
# LINE_JOIN): see BlockEncoder. The stdlib pattern is a fast pre-check (its \s, str.isspace, includes
# every \s of `regex`).
_SPACE_NOT_BEFORE_WORD = regex.compile(r" (?![\S\n])")
_SPACE_BEFORE_SPACE = re.compile(r" [^\S\n]")


class BlockEncoder:
    """Encodes blocks of lines exactly as fairseq's encoder: ``line.strip()``, then
    ``fairseq.data.encoders.gpt2_bpe_utils.Encoder.encode``, at the speed of a dictionary lookup.

    Why the shortcut is exact. Each stripped line is cut at every space followed by a non-whitespace
    char (``\\s``/``\\S`` of fairseq's regex). At such a space GPT2_SPLIT always ends a word (its
    letter/digit/other classes exclude whitespace, and a whitespace run stops before the space because
    of ``\\s+(?!\\S)``) and starts the next one there; the pattern has no look-behind, so each piece is
    split the same alone as in its line. Pieces repeat, so each one is split once (fairseq's regex, same
    module and pattern) and BPE-encoded once (HF ``tokenizers``, the same merges), then cached.

    A whole block is cut by one ``split(" ")``: its non-empty lines are joined with LINE_JOIN, so that
    a line's first piece (but the block's) comes out as ``"\\n" + piece``, encoded as that text:
    ``"\\n"`` before a non-whitespace char (lines are stripped, and every ``\\s`` char is
    ``str.isspace``) is a word of its own, the lone token 198, then the piece's words as in its line.
    GPT-2 never produces 198 inside a line (lines hold no ``\\n``): it marks where each line's ids end.
    The space of a LINE_JOIN only ends the piece before it, which ends its line.
    """

    strips_lines = True  # gets each line stripped, as fairseq's encoder strips it

    def __init__(self, bpe: Gpt2Bpe, cache_entries: int = CACHE_ENTRIES):
        self.bpe = bpe
        self.cache_entries = cache_entries
        # piece -> its value: join_words of the words of " " + piece, or of the piece itself for
        # "\n" + a line's first piece
        self.piece_cache = _PieceCache()
        self.word_cache: dict = {}  # GPT2_SPLIT word -> format_word(its BPE ids)

    def format_word(self, ids: list[int]):
        """What a word's BPE ids are cached as."""
        raise NotImplementedError

    def join_words(self, words: list[str], formatted: list, first: bool) -> bytes:
        """A piece's value from its words and their format_word values (``first``: the block's first
        piece), such that the values of a block's pieces concatenated are its encoding; the lone
        word ``"\\n"`` (only ever a piece's first) marks a line end."""
        raise NotImplementedError

    def _values(self, texts: Iterable[str], first: bool = False) -> list[bytes]:
        """The value of each text's ids (fairseq's Encoder.encode), through the word cache."""
        words_of = list(map(GPT2_SPLIT.findall, texts))
        cache = self.word_cache
        if len(cache) > self.cache_entries:
            cache.clear()
        unknown = list(set(chain.from_iterable(words_of)).difference(cache))
        if unknown:
            cache.update(zip(unknown, map(self.format_word, self.bpe.encode_words(unknown))))
        formatted, join = cache.__getitem__, self.join_words
        return [join(words, list(map(formatted, words)), first) for words in words_of]

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

    def encode_joined(self, lines: Sequence[str]) -> list[bytes]:
        """The cached values of the pieces of the non-empty stripped ``lines``."""
        pieces = self._pieces(LINE_JOIN.join(lines))
        first = pieces[0]  # the block's first piece: neither a leading space nor a "\n", encoded below
        pieces[0] = ""  # always in the cache
        cache = self.piece_cache
        if len(cache) + len(pieces) > self.cache_entries:
            cache.clear()
        values = list(map(cache.__getitem__, pieces))  # the hot loop: C-level lookups only
        if cache.missed:
            missing = list(set(cache.missed))
            cache.missed.clear()
            texts = (piece if piece.startswith("\n") else " " + piece for piece in missing)
            cache.update(zip(missing, self._values(texts)))
            # Fill in the missing values (None) only: a new pass over all pieces would cost more.
            for index in compress(range(len(values)), map(is_, values, repeat(None))):
                values[index] = cache[pieces[index]]
        values[0] = self._values([first], first=True)[0]
        return values


class _PieceCache(dict):
    """A dict whose missing keys read as None and are listed in ``missed``: one pass of C-level lookups
    gives the values and the new pieces. Holds "" (value b""), the block's first piece's stand-in."""

    def __init__(self):
        super().__init__({"": b""})
        self.missed: list[str] = []

    def __missing__(self, key: str) -> None:
        self.missed.append(key)
        return None

    def clear(self) -> None:
        super().clear()
        self[""] = b""


class TextBlockEncoder(BlockEncoder):
    """Lines of space-separated GPT-2 ids, as fairseq's encoder prints them (ASCII bytes)."""

    def format_word(self, ids: list[int]) -> str:
        return " ".join(map(str, ids))

    def join_words(self, words: list[str], formatted: list[str], first: bool) -> bytes:
        # Each piece brings the separator before it: the line end, or a space within a line.
        if words[0] == "\n":
            return ("\n" + " ".join(formatted[1:])).encode("ascii")
        return (("" if first else " ") + " ".join(formatted)).encode("ascii")

    def encode_lines(self, stripped: Sequence[str]) -> bytes:
        """One output line per stripped input line (empty for an empty one), each ended by a newline."""
        nonempty = [line for line in stripped if line]
        if not nonempty:
            return b"\n" * len(stripped)
        encoded = b"".join(self.encode_joined(nonempty)) + b"\n"
        if len(nonempty) == len(stripped):
            return encoded
        rows = iter(encoded.split(b"\n"))
        return b"".join(next(rows) + b"\n" if line else b"\n" for line in stripped)


class SentencePieceLines:
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

    def line_ids(self, stripped: Sequence[str]) -> list[list[int]]:
        rows = self.tokenizer.encode_batch(stripped)
        for index, ids in enumerate(rows):
            if self.unk_id in ids:
                # what fairseq-preprocess's tokenize_line makes of the piece text, piece by piece
                tokens = " ".join(self.tokenizer.encode_pieces(stripped[index])).split()
                rows[index] = [self.processor.piece_to_id(token) for token in tokens]
        return rows


class SentencePieceTextEncoder(SentencePieceLines):
    """Lines of space-separated pieces, as ``spm_encode --output_format=piece`` writes them (UTF-8)."""

    def encode_lines(self, stripped: Sequence[str]) -> bytes:
        pieces = self.processor.encode(list(stripped), out_type=str, num_threads=1)
        return "".join(" ".join(line) + "\n" for line in pieces).encode("utf-8")


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
