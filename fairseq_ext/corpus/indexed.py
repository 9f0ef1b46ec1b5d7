"""fairseq's mmap indexed dataset (``PREFIX.bin`` + ``PREFIX.idx``, what ``fairseq-preprocess`` writes by
default): the block encoders of its sequences, and its writer, byte for byte as
``fairseq.data.indexed_dataset.MMapIndexedDatasetBuilder`` (fairseq 0.12), whole blocks at a time.

The format: ``.bin`` holds every sequence's tokens back to back in the token dtype; ``.idx`` holds
b"MMIDIDX\\x00\\x00", version 1 (<Q), the dtype's code (<B), the number of sequences (<Q), then every
sequence's size (int32), then every sequence's byte offset in ``.bin`` (int64).
"""

from __future__ import annotations

import struct
from itertools import chain
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from fairseq_ext.corpus.encoders import NEWLINE_ID, BlockEncoder, SentencePieceLines
from fairseq_ext.tokenizer.spm import SentencePiece

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
# fairseq's _code_to_dtype (indexed_dataset.py); its np.float64 and np.double (6, 7) are one dtype.
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
               np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.uint16): 8,
               np.dtype(np.uint32): 9, np.dtype(np.uint64): 10}


class IdBlockEncoder(BlockEncoder):
    """Each line's GPT-2 ids followed by NEWLINE_ID as its end marker (where ``eos`` goes in a ``.bin``)."""

    marker = NEWLINE_ID
    _MARKER = np.array([NEWLINE_ID], dtype=np.int32).tobytes()

    def format_word(self, ids: list[int]) -> bytes:
        return np.array(ids, dtype=np.int32).tobytes()  # so that a block is one bytes join, no Python loop

    def join_words(self, words: list[str], formatted: list[bytes], first: bool) -> bytes:
        return b"".join(formatted)

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


class SentencePieceBlockEncoder(SentencePieceLines):
    """Each line's SentencePiece ids followed by ``marker``, an id no piece has (eos in a ``.bin``)."""

    def __init__(self, tokenizer: SentencePiece):
        super().__init__(tokenizer)
        self.marker = tokenizer.vocab_size

    def encode_lines(self, stripped: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(all ids, each line's followed by the marker, int32; each line's length, marker included)."""
        rows = self.line_ids(stripped)
        marker = [self.marker]
        data = np.fromiter(chain.from_iterable(chain(row, marker) for row in rows), dtype=np.int32)
        return data, np.array([len(row) + 1 for row in rows], dtype=np.int64)


class DatasetBlockEncoder:
    """What ``fairseq-preprocess`` stores, from an id encoder's output: each line's fairseq dictionary
    indices then ``eos``, in the dataset's token dtype, mapped in the worker (the parent only writes).
    ``lookup`` maps every vocabulary id to its index (``Dictionary.index`` of the token's text, ``unk``
    when absent) and the id encoder's line-end ``marker`` to ``eos``: the marker only ever stands for a
    line end (see BlockEncoder; SentencePiece's is no piece's id), so the mapping is exact."""

    def __init__(self, ids: Union[IdBlockEncoder, SentencePieceBlockEncoder], lookup: np.ndarray,
                 unk_index: int):
        self.ids = ids
        self.strips_lines = ids.strips_lines
        self.lookup = lookup
        self.unk_index = unk_index

    def encode_lines(self, lines: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """(the indices of every line's sequence, each sequence's size as int32, how many are unk)."""
        ids, sizes = self.ids.encode_lines(lines)
        indices = self.lookup[ids]
        return indices, sizes.astype(np.int32), int(np.count_nonzero(indices == self.unk_index))


def token_dtype(vocab_size: Optional[int]) -> np.dtype:
    """fairseq's ``best_fitting_int_dtype(vocab_size)``, the dtype ``make_builder(impl="mmap")`` writes
    (fairseq-preprocess passes ``len(dictionary)``)."""
    if vocab_size is None:
        return np.dtype(np.uint32)
    if vocab_size < 65500:
        return np.dtype(np.uint16)
    if vocab_size < 4294967295:
        return np.dtype(np.uint32)
    return np.dtype(np.int64)


class IndexedDatasetWriter:
    """Appends blocks of sequences (their tokens concatenated, and their sizes) to ``PREFIX.bin``; the
    sizes are kept as int32 arrays (4 bytes a sequence, what the index needs) until ``finalize``."""

    def __init__(self, prefix: str, dtype: np.dtype):
        self.prefix = prefix
        self.dtype = np.dtype(dtype)
        self._data = open(f"{prefix}.bin", "wb")
        self._sizes: list[np.ndarray] = []

    def add_block(self, tokens: np.ndarray, sizes: np.ndarray) -> None:
        if tokens.dtype != self.dtype or int(sizes.sum()) != len(tokens):
            raise ValueError(f"block of {tokens.dtype} tokens / sizes for {self.dtype} or a size mismatch")
        self._data.write(tokens.tobytes())
        self._sizes.append(sizes.astype(np.int32))

    def finalize(self) -> None:
        self._data.close()
        count = sum(len(sizes) for sizes in self._sizes)
        with open(f"{self.prefix}.idx", "wb") as index:
            index.write(MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", DTYPE_CODES[self.dtype]))
            index.write(struct.pack("<Q", count))
            for sizes in self._sizes:
                index.write(sizes.tobytes())
            # Each sequence's offset: the bytes of the sequences before it (fairseq sums them in Python
            # ints; int64 holds any .bin size).
            offset = 0
            for sizes in self._sizes:
                nbytes = sizes.astype(np.int64) * self.dtype.itemsize
                ends = np.cumsum(nbytes) + offset
                index.write((ends - nbytes).tobytes())
                offset = int(ends[-1]) if len(ends) else offset
        self._sizes = []

    def close(self) -> None:
        self._data.close()


SCAN_BYTES = 256 << 20  # a .bin up to this size is read whole for its largest id; a larger one in chunks
SCAN_CHUNKS = 256  # evenly spaced chunks of 1 MiB each (a wrong dictionary shows in every part)


def check_indexed_dataset(prefix: str, symbols: int, what: str) -> int:
    """Checks ``PREFIX.idx``/``PREFIX.bin`` for what fairseq would fail on, with a one-line
    UserInputError: an empty split ("cannot mmap an empty file"), a ``.bin`` whose size is not what its
    index says (truncated: "offset must be non-negative"), a token id at or above ``symbols``, the
    dictionary's size (IndexError in the embedding). Returns the number of sequences. An index in
    another format than mmap's is left to fairseq."""
    from fairseq_ext.errors import UserInputError

    index, data = f"{prefix}.idx", f"{prefix}.bin"
    with open(index, "rb") as stream:
        header = stream.read(len(MAGIC) + 8 + 1 + 8)
        if not header.startswith(MAGIC):
            return -1
        if len(header) < len(MAGIC) + 17:
            raise UserInputError(f"{what}: {index} is truncated (rebuild the data-bin)")
        code = header[len(MAGIC) + 8]
        count = struct.unpack("<Q", header[-8:])[0]
        dtype = {code_: dtype for dtype, code_ in DTYPE_CODES.items()}.get(code)
        sizes = np.frombuffer(stream.read(4 * count), dtype=np.int32)
    if dtype is None or len(sizes) != count:
        raise UserInputError(f"{what}: {index} is truncated or damaged (rebuild the data-bin)")
    if count == 0 or not sizes.any():
        raise UserInputError(f"{what} is empty (no tokens in {data}): its raw text was empty; rebuild the "
                             "data-bin from text that has documents")
    expected = int(sizes.astype(np.int64).sum()) * dtype.itemsize
    actual = Path(data).stat().st_size if Path(data).is_file() else 0
    if actual != expected:
        raise UserInputError(f"{what}: {data} has {actual} bytes but its index {index} describes {expected} "
                             "(a truncated or mismatched copy): copy or rebuild the pair")
    largest = _largest_id(data, dtype, actual)
    if largest >= symbols:
        raise UserInputError(f"{what}: token id {largest} in {data}, but the dictionary has {symbols} "
                             "symbols: the data was binarized with another (larger) dictionary than dict.txt")
    return count


def _largest_id(path: str, dtype: np.dtype, nbytes: int) -> int:
    tokens = np.memmap(path, dtype=dtype, mode="r", shape=(nbytes // dtype.itemsize,))
    if nbytes <= SCAN_BYTES:
        return int(tokens.max())
    chunk = (1 << 20) // dtype.itemsize
    starts = np.linspace(0, len(tokens) - chunk, SCAN_CHUNKS).astype(np.int64)
    return max(int(tokens[start:start + chunk].max()) for start in starts)
