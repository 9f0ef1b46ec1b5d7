"""The two corpus tools' pipelines: bpe-encode (text ids, fairseq's encoder output) and binarize
(fairseq-preprocess output), both streaming through the worker pool."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

from fairseq_ext.cli import progress_bar
from fairseq_ext.corpus.encoders import SentencePieceTextEncoder, TextBlockEncoder
from fairseq_ext.corpus.pool import Task, WorkerPool
from fairseq_ext.corpus.reading import (
    input_bytes,
    is_stream,
    open_input,
    read_line_blocks,
    read_numbered_blocks,
    zip_line_blocks,
)
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputFiles
from fairseq_ext.tokenizer import KINDS, Tokenizer
from fairseq_ext.tokenizer.dictionary import (
    EOS_INDEX,
    SPECIALS,
    UNK_INDEX,
    UNKNOWN_SAMPLE_LINES,
    read_dictionary,
    read_dictionary_entries,
    write_dictionary,
)
from fairseq_ext.tokenizer.spm import SentencePiece


def tokenizer_files(directory: Path) -> tuple[str, ...]:
    """(kind, its files...): what builds the tokenizer of ``directory`` (``load``)."""
    kind = next(kind for kind in KINDS if kind.recognises(directory))
    return (kind.kind, *(str(Path(directory) / name) for name in kind.files))


def load(kind: str, *files: str) -> Tokenizer:
    return next(k for k in KINDS if k.kind == kind)(*files)


def _tasks(streams: Sequence, names: Sequence[str], keep_empty: bool,
           warn: Callable[[str], None]) -> Iterator[Task]:
    """One input: its byte blocks, decoded by the workers. Several: the parent decodes and aligns their
    lines (fairseq's encoder zips them)."""
    if len(streams) == 1:
        for block in read_numbered_blocks(streams[0], names[0]):
            yield [block], keep_empty, len(block.data)
        return
    readers = [read_line_blocks(stream, name) for stream, name in zip(streams, names)]
    for columns, nbytes in zip_line_blocks(readers, names, warn):
        yield columns, keep_empty, nbytes


def encode_files(inputs: Sequence[str], outputs: Sequence[str], files: Sequence[str],
                 keep_empty: bool = False, workers: int = 1, progress: bool = True,
                 warn: Callable[[str], None] = print) -> dict[str, int]:
    """fairseq's multiprocessing_bpe_encoder.py, same output bytes: each set of parallel input lines is
    stripped, dropped if one is empty (unless ``keep_empty``), else GPT-2 encoded to ``"id id ...\\n"``
    (with a SentencePiece model: its pieces, as spm_encode writes them). ``files``: tokenizer_files()."""
    if len(inputs) != len(outputs):
        raise UserInputError(f"{len(inputs)} inputs but {len(outputs)} outputs: give one output per input")
    streams = [name if name == "-" else os.path.realpath(name) for name in inputs
               if name == "-" or is_stream(name)]
    if len(set(streams)) < len(streams):  # each would get a share of its lines
        raise UserInputError("an input stream (standard input, a FIFO) is given twice: it can be read once")
    targets = OutputFiles(outputs, inputs=[*inputs, *files[1:]])
    tokenizer = load(*files)
    encoder = (SentencePieceTextEncoder(tokenizer) if isinstance(tokenizer, SentencePiece)
               else TextBlockEncoder(tokenizer))
    streams = [open_input(name) for name in inputs]
    stats = {"lines": 0, "encoded": 0, "filtered_empty": 0}
    try:
        with targets.open("wb") as sinks, WorkerPool(workers, encoder) as pool, \
                progress_bar(input_bytes(inputs), "bpe-encode", progress) as bar:
            for encoded, kept, dropped, nbytes in pool.map(_tasks(streams, inputs, keep_empty, warn)):
                for text, sink, name in zip(encoded, sinks, outputs):
                    try:
                        sink.write(text)
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


def binarize_files(raw_files: dict[str, str], destdir: str, tokenizer_dir: Path, dict_path: str,
                   keep_empty: bool = True, workers: int = 1, progress: bool = True
                   ) -> dict[str, dict[str, int]]:
    """Raw text splits -> ``DESTDIR/{split}.bin/.idx`` and ``dict.txt`` (into an existing DESTDIR: the
    caller's staging directory, see fairseq_ext.outputs), byte-identical to
    multiprocessing_bpe_encoder.py (--keep-empty as given) + ``fairseq-preprocess --only-source --srcdict``
    (mmap dataset), in one streaming pass; with a SentencePiece ``tokenizer_dir`` to its pieces (spm_encode)
    + the same fairseq-preprocess. Returns per split: sequences, tokens (eos included), unk.

    fairseq-preprocess loads the dictionary (``Dictionary.load``: the 4 specials, then the file's
    entries), saves it as ``dict.txt``, and stores each line's ``Dictionary.index`` of every
    whitespace-separated token then ``eos``, in ``best_fitting_int_dtype(len(dictionary))``: the same here,
    without fairseq."""
    # numpy only here: bpe-encode starts faster without it.
    import numpy as np

    from fairseq_ext.corpus.indexed import (
        DatasetBlockEncoder,
        IdBlockEncoder,
        IndexedDatasetWriter,
        SentencePieceBlockEncoder,
        token_dtype,
    )
    from fairseq_ext.tokenizer.base import vocab_to_dictionary

    entries = read_dictionary_entries(dict_path)
    symbols = list(SPECIALS) + [symbol for symbol, _ in entries]
    dtype = token_dtype(len(symbols))
    tokenizer = load(*tokenizer_files(tokenizer_dir))
    ids = (SentencePieceBlockEncoder(tokenizer) if isinstance(tokenizer, SentencePiece)
           else IdBlockEncoder(tokenizer))
    # vocabulary id -> dictionary index exactly as fairseq-preprocess looks up the token's text (GPT-2:
    # the id's decimal string; SentencePiece: the piece); the line-end marker becomes eos.
    lookup = vocab_to_dictionary(tokenizer.vocab_symbols(), symbols, UNK_INDEX)
    if ids.marker == len(lookup):
        lookup = np.append(lookup, UNK_INDEX)
    lookup[ids.marker] = EOS_INDEX
    write_dictionary(entries, os.path.join(destdir, "dict.txt"))
    summary = {}
    with WorkerPool(workers, DatasetBlockEncoder(ids, lookup.astype(dtype), UNK_INDEX)) as pool:
        for split, path in raw_files.items():
            stats = {"sequences": 0, "tokens": 0, "unk": 0, "filtered_empty": 0}
            with open_input(str(path)) as stream, \
                    progress_bar(input_bytes([str(path)]), f"binarize {split}", progress) as bar:
                writer = IndexedDatasetWriter(os.path.join(destdir, split), dtype)
                try:
                    for ((indices, sizes, unk),), _kept, dropped, nbytes in pool.map(
                            _tasks([stream], [str(path)], keep_empty, print)):
                        writer.add_block(indices, sizes)
                        stats["sequences"] += len(sizes)
                        stats["tokens"] += len(indices)
                        stats["unk"] += unk
                        stats["filtered_empty"] += dropped
                        bar.update(nbytes)
                    writer.finalize()
                finally:
                    writer.close()
            summary[split] = stats
    return summary


def first_lines(path: str | Path, count: int = UNKNOWN_SAMPLE_LINES) -> list[str]:
    """The first ``count`` non-blank lines of a text file, stripped (a look before any work)."""
    lines = []
    with open_input(str(path)) as stream:
        for lines_read, _ in read_line_blocks(stream, str(path), errors="replace"):
            lines += [line.strip() for line in lines_read if line.strip()]
            if len(lines) >= count:
                break
    return lines[:count]


def check_has_text(paths: Sequence[str | Path], hint: str) -> None:
    """Each file holds a non-blank line (fairseq binarizes an empty one into a split it cannot load)."""
    for path in paths:
        if not first_lines(path, 1):
            raise UserInputError(f"{path} holds no text (empty or blank): {hint}")


def unknown_tokens(lines: Sequence[str], tokenizer_dir: Path, dict_path: str | Path) -> tuple[int, int]:
    """(tokens not in the dictionary, tokens) of ``lines`` tokenized as binarize_files does."""
    from fairseq_ext.tokenizer.base import vocab_to_dictionary

    tokenizer = load(*tokenizer_files(tokenizer_dir))
    lookup = vocab_to_dictionary(tokenizer.vocab_symbols(), read_dictionary(dict_path), UNK_INDEX)
    ids = [i for line in lines for i in tokenizer.encode(line)]
    return int((lookup[ids] == UNK_INDEX).sum()) if ids else 0, len(ids)


def unknown_symbols(lines: Sequence[str], dict_path: str | Path) -> tuple[int, int]:
    """(tokens not in the dictionary, tokens) of already tokenized ``lines`` (fairseq-preprocess's input:
    whitespace-separated symbols)."""
    symbols = set(read_dictionary(dict_path))
    tokens = [token for line in lines for token in line.split()]
    return sum(token not in symbols for token in tokens), len(tokens)
