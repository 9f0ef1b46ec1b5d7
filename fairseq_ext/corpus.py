"""Streaming corpus preparation shared by scripts/split_data.py, bpe_encode.py and prepare_corpus.py.

Input is read the way fairseq's ``multiprocessing_bpe_encoder.py`` reads it (UTF-8, Python's universal
newlines: ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line), but in byte blocks, so memory stays bounded
whatever the file size. Blocks go to worker processes and come back in input order.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, compress, repeat
from operator import is_not, not_
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import regex

from fairseq_ext.bpe import GPT2_SPLIT, Gpt2Bpe
from fairseq_ext.cli import UserInputError
from fairseq_ext.outputs import OutputFiles

BLOCK_BYTES = 1 << 20
NEWLINE_ID = 198  # GPT-2's token for a lone "\n": in a block of joined stripped lines, only a line break
CACHE_ENTRIES = 1 << 19  # per worker and cache (~100 MB when full); cleared when full: bounded memory
# A space that does not start a new GPT-2 word (next char is whitespace): see BlockEncoder. The stdlib
# pattern is a fast pre-check (its \s, str.isspace, includes every \s of `regex`).
_SPACE_NOT_BEFORE_WORD = regex.compile(r" (?!\S)")
_SPACE_BEFORE_SPACE = re.compile(r" \s")


def fairseq_encoder_script() -> Path:
    """fairseq's examples/roberta/multiprocessing_bpe_encoder.py, the reference that bpe_encode.py and
    prepare_corpus.py match (tests and benchmarks run it), found without importing fairseq."""
    import importlib.util

    spec = importlib.util.find_spec("fairseq")
    if spec is None or spec.origin is None:
        raise UserInputError("fairseq is not installed")
    return Path(spec.origin).parent / "examples" / "roberta" / "multiprocessing_bpe_encoder.py"


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Files named by paths, directories (their files, recursively, sorted) or glob patterns, in order."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise UserInputError(f"no files in directory {path}")
        else:
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not found:
                raise UserInputError(f"input not found: {pattern}")
        files.extend(found)
    return files


def _line_breaks(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def decode_lines(block: bytes, name: str, first_line: int, errors: str = "strict", hint: str = "",
                 counts: Optional[dict] = None) -> list[str]:
    """The lines of ``block`` (terminators removed) as text mode would give them; ``first_line`` numbers
    the first one for the error message on invalid UTF-8. With ``errors="replace"``, ``counts["replaced"]``
    adds up the invalid sequences replaced by U+FFFD."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as err:
        if errors == "replace":
            text = block.decode("utf-8", "replace")
            if counts is not None:  # the U+FFFD that were not already in the input
                counts["replaced"] = (counts.get("replaced", 0) + text.count("\ufffd")
                                      - block.decode("utf-8", "ignore").count("\ufffd"))
            return _split_lines(text)
        line = first_line + _line_breaks(block[:err.start])
        raise UserInputError(f"{name}: line {line}: invalid UTF-8 ({err.reason}, "
                             f"byte 0x{block[err.start]:02x}){hint}") from None
    return _split_lines(text)


def _split_lines(text: str) -> list[str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the text after the last terminator: a line only if non-empty
        lines.pop()
    return lines


def read_line_blocks(stream: BinaryIO, name: str, errors: str = "strict", hint: str = "",
                     counts: Optional[dict] = None, block_bytes: int = BLOCK_BYTES
                     ) -> Iterator[tuple[list[str], int]]:
    """Yields (lines, bytes read) for blocks of about ``block_bytes``, each cut after a ``\\n`` (so a
    ``\\r\\n`` or a UTF-8 sequence is never split)."""
    pending: list[bytes] = []
    next_line = 1
    while True:
        data = stream.read(block_bytes)
        if not data:
            break
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # a line longer than a block: keep reading
            pending.append(data)
            continue
        block = b"".join(pending) + data[:cut]
        pending = [data[cut:]]
        lines = decode_lines(block, name, next_line, errors, hint, counts)
        next_line += len(lines)
        yield lines, len(block)
    tail = b"".join(pending)
    if tail:
        yield decode_lines(tail, name, next_line, errors, hint, counts), len(tail)


def open_input(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    existing = Path(name)
    if not existing.is_file():
        raise UserInputError(f"input not found: {name}")
    return open(existing, "rb")


def input_bytes(names: Sequence[str]) -> Optional[int]:
    """Total size for a progress bar, or None when an input is a stream."""
    if any(name == "-" for name in names):
        return None
    return sum(os.path.getsize(name) for name in names)


def zip_line_blocks(readers: Sequence[Iterator[tuple[list[str], int]]], names: Sequence[str],
                    warn: Callable[[str], None]) -> Iterator[tuple[list[list[str]], int]]:
    """Aligned line blocks of several inputs, stopping at the shortest like ``zip(*inputs)`` in fairseq's
    encoder; extra lines in longer inputs are reported through ``warn``."""
    if len(readers) == 1:
        for lines, nbytes in readers[0]:
            yield [lines], nbytes
        return
    buffers: list[list[str]] = [[] for _ in readers]
    exhausted = [False] * len(readers)
    emitted = 0
    while True:
        nbytes = 0
        for i, reader in enumerate(readers):
            while not buffers[i] and not exhausted[i]:
                block = next(reader, None)
                if block is None:
                    exhausted[i] = True
                else:
                    buffers[i] = block[0]
                    nbytes += block[1]
        count = min(len(buffer) for buffer in buffers)
        if count == 0:
            break
        emitted += count
        yield [buffer[:count] for buffer in buffers], nbytes
        buffers = [buffer[count:] for buffer in buffers]
    for i, reader in enumerate(readers):
        if buffers[i] or next(reader, None) is not None:
            warn(f"{names[i]} has more lines than the shortest input; like fairseq's encoder, "
                 f"only the first {emitted} lines of each input were encoded")


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


def filter_rows(columns: Sequence[Sequence[str]], keep_empty: bool) -> tuple[list[list[str]], int]:
    """Strips every line; without ``keep_empty`` drops each row (a line of every input) that has an empty
    line, as fairseq's encoder does. Returns the kept columns and the number of rows dropped."""
    stripped = [[line.strip() for line in column] for column in columns]
    if keep_empty:
        return stripped, 0
    keep = [all(row) for row in zip(*stripped)]
    if all(keep):
        return stripped, 0
    kept = [[line for line, k in zip(column, keep) if k] for column in stripped]
    return kept, keep.count(False)


# Worker processes: each builds its encoder once (from picklable arguments) and keeps its caches.
_worker_encoder = None
# A worker whose start-up failed keeps the error and raises it from its first task: an initializer that
# raises would make a multiprocessing pool start a new worker, forever.
_worker_error: Optional[BaseException] = None


def init_worker(make_encoder: Callable[..., BlockEncoder], *args) -> None:
    global _worker_encoder
    _worker_encoder = make_encoder(*args)


def _init_pool_process(initializer: Callable, *args) -> None:
    global _worker_error
    # Ctrl-C reaches the whole process group: the parent alone stops the run (and its pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # One process per core already: no Rust thread pool inside a worker (and no fork warnings).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        initializer(*args)
    except Exception as err:
        _worker_error = err


def _run_task(func: Callable, task):
    if _worker_error is not None:
        raise _worker_error
    return func(task)


def encode_block(task: tuple[list[list[str]], bool, int]):
    """(columns, keep_empty, nbytes) -> (encoded columns, rows kept, rows dropped, nbytes)."""
    columns, keep_empty, nbytes = task
    kept, dropped = filter_rows(columns, keep_empty)
    return [_worker_encoder.encode_lines(column) for column in kept], len(kept[0]), dropped, nbytes


class WorkerPool:
    """``map`` on worker processes with results in input order and at most 2 blocks per worker in flight
    (``Pool.imap`` would read the whole input ahead). One worker runs in this process. The first error of
    a worker, at start-up or in a task, ends the map with that error; a worker that dies ends it too."""

    def __init__(self, workers: int, initializer: Callable, initargs: tuple):
        self.workers = max(1, workers)
        if self.workers == 1:
            initializer(*initargs)
            self.pool = None
        else:
            self.pool = ProcessPoolExecutor(self.workers, initializer=_init_pool_process,
                                            initargs=(initializer, *initargs))
            self.pool.submit(int)  # starts the workers now: their set-up overlaps the caller's

    def map(self, func: Callable, tasks: Iterable) -> Iterator:
        if self.pool is None:
            yield from map(func, tasks)
            return
        pending: deque = deque()
        try:
            for task in tasks:
                pending.append(self.pool.submit(_run_task, func, task))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise UserInputError("a worker process died (out of memory?): run again with fewer --workers"
                                 ) from None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def make_text_encoder(encoder_json: str, vocab_bpe: str) -> TextBlockEncoder:
    return TextBlockEncoder(Gpt2Bpe(encoder_json, vocab_bpe))


def make_id_encoder(encoder_json: str, vocab_bpe: str) -> IdBlockEncoder:
    return IdBlockEncoder(Gpt2Bpe(encoder_json, vocab_bpe))


def progress_bar(total: Optional[int], desc: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                disable=not enabled, dynamic_ncols=True)


def encode_files(inputs: Sequence[str], outputs: Sequence[str], encoder_json: str, vocab_bpe: str,
                 keep_empty: bool = False, workers: int = 1, progress: bool = True,
                 warn: Callable[[str], None] = print) -> dict[str, int]:
    """fairseq's multiprocessing_bpe_encoder.py, same output bytes: each set of parallel input lines is
    stripped, dropped if one is empty (unless ``keep_empty``), else GPT-2 encoded to ``"id id ...\\n"``."""
    if len(inputs) != len(outputs):
        raise UserInputError(f"{len(inputs)} inputs but {len(outputs)} outputs: give one output per input")
    targets = OutputFiles(outputs, inputs=[*inputs, encoder_json, vocab_bpe])
    streams = [open_input(name) for name in inputs]
    stats = {"lines": 0, "encoded": 0, "filtered_empty": 0}
    try:
        readers = [read_line_blocks(stream, name) for stream, name in zip(streams, inputs)]
        tasks = ((columns, keep_empty, nbytes) for columns, nbytes in zip_line_blocks(readers, inputs, warn))
        initargs = (make_text_encoder, str(encoder_json), str(vocab_bpe))
        with targets.open("wb") as sinks, WorkerPool(workers, init_worker, initargs) as pool, \
                progress_bar(input_bytes(inputs), "bpe-encode", progress) as bar:
            for encoded, kept, dropped, nbytes in pool.map(encode_block, tasks):
                for text, sink, name in zip(encoded, sinks, outputs):
                    try:
                        sink.write(text.encode("ascii"))
                    except OSError as err:  # a device written directly (/dev/full), or stdout
                        raise UserInputError(f"cannot write {name}: {err.strerror}") from None
                stats["encoded"] += kept
                stats["filtered_empty"] += dropped
                bar.update(nbytes)
    finally:
        for stream in streams:
            if stream is not sys.stdin.buffer:
                stream.close()
    stats["lines"] = stats["encoded"] + stats["filtered_empty"]
    return stats


def binarize_files(raw_files: dict[str, str], destdir: str, encoder_json: str, vocab_bpe: str, dict_path: str,
                   keep_empty: bool = True, workers: int = 1, progress: bool = True
                   ) -> dict[str, dict[str, int]]:
    """Raw text splits -> ``DESTDIR/{split}.bin/.idx`` and ``dict.txt`` (DESTDIR exists: a staging
    directory, see fairseq_ext.outputs), byte-identical to
    multiprocessing_bpe_encoder.py (--keep-empty as given) + ``fairseq-preprocess --only-source --srcdict``
    (mmap dataset), in one streaming pass. Returns per split: sequences, tokens (eos included), unk."""
    streams = {split: open_input(str(path)) for split, path in raw_files.items()}
    # Workers start before fairseq (torch) is imported: they need only tokenizers, and the import
    # overlaps with their first blocks.
    with WorkerPool(workers, init_worker, (make_id_encoder, str(encoder_json), str(vocab_bpe))) as pool:
        import torch
        from fairseq.data import Dictionary, indexed_dataset

        try:
            dictionary = Dictionary.load(str(dict_path))
        except (ValueError, RuntimeError) as err:  # fairseq's message for a malformed or duplicate line
            raise UserInputError(f"{dict_path}: not a fairseq dictionary: {err}") from None
        dictionary.save(os.path.join(destdir, "dict.txt"))
        try:
            vocab_size = len(json.loads(Path(encoder_json).read_text(encoding="utf-8")))
        except ValueError as err:
            raise UserInputError(f"{encoder_json}: not valid JSON ({err})") from None
        # GPT-2 id -> dictionary index exactly as fairseq-preprocess looks up the id's decimal string;
        # the line-end marker becomes eos.
        lookup = np.array([dictionary.index(str(gpt2_id)) for gpt2_id in range(vocab_size)], dtype=np.int64)
        lookup[NEWLINE_ID] = dictionary.eos()
        summary = {}
        for split, stream in streams.items():
            prefix = os.path.join(destdir, split)
            builder = indexed_dataset.make_builder(indexed_dataset.data_file_path(prefix), impl="mmap",
                                                   vocab_size=len(dictionary))
            stats = {"sequences": 0, "tokens": 0, "unk": 0, "filtered_empty": 0}
            blocks = read_line_blocks(stream, str(raw_files[split]))
            tasks = (([lines], keep_empty, nbytes) for lines, nbytes in blocks)
            with progress_bar(input_bytes([str(raw_files[split])]), f"binarize {split}", progress) as bar:
                for ((ids, sizes),), _kept, dropped, nbytes in pool.map(encode_block, tasks):
                    indices = lookup[ids]
                    # int64 views (older torch has no uint16 tensors); the builder picks its dtype.
                    for sequence in torch.from_numpy(indices).split(sizes.tolist()):
                        builder.add_item(sequence)
                    stats["sequences"] += len(sizes)
                    stats["tokens"] += len(indices)
                    stats["unk"] += int(np.count_nonzero(indices == dictionary.unk_index))
                    stats["filtered_empty"] += dropped
                    bar.update(nbytes)
            builder.finalize(indexed_dataset.index_file_path(prefix))
            stream.close()
            summary[split] = stats
    return summary


def iter_documents(files: Sequence[Path], errors: str = "strict", hint: str = "",
                   counts: Optional[dict] = None, on_bytes: Callable[[int], None] = lambda nbytes: None
                   ) -> Iterator[list[str]]:
    """Documents of the files, in order: runs of lines that are not blank (``line.strip()`` non-empty,
    what fairseq's encoder keeps); blank lines and the end of a file separate them."""
    for path in files:
        with open(path, "rb") as stream:
            document: list[str] = []
            for lines, nbytes in read_line_blocks(stream, str(path), errors, hint, counts):
                for line in lines:
                    if line.strip():
                        document.append(line)
                    elif document:
                        yield document
                        document = []
                on_bytes(nbytes)
            if document:
                yield document


def assign_splits(total: int, valid: int, test: int, seed: int) -> Iterator[str]:
    """A uniformly random assignment of ``total`` documents, in order, to exactly ``valid`` valid and
    ``test`` test documents (the rest train), in O(1) memory (sequential selection sampling)."""
    import random

    rng = random.Random(seed)
    for remaining in range(total, 0, -1):
        draw = rng.random() * remaining
        if draw < valid:
            valid -= 1
            yield "valid"
        elif draw < valid + test:
            test -= 1
            yield "test"
        else:
            yield "train"
