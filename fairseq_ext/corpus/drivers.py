"""The two corpus tools' pipelines: bpe-encode (text ids, fairseq's encoder output) and binarize
(fairseq-preprocess output), both streaming through the worker pool."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fairseq_ext.cli import UserInputError, progress_bar
from fairseq_ext.corpus.encoders import (
    NEWLINE_ID,
    IdBlockEncoder,
    SentencePieceBlockEncoder,
    SentencePieceTextEncoder,
    TextBlockEncoder,
)
from fairseq_ext.corpus.pool import WorkerPool, encode_block, init_worker
from fairseq_ext.corpus.reading import input_bytes, open_input, read_line_blocks, zip_line_blocks
from fairseq_ext.outputs import OutputFiles
from fairseq_ext.tokenizer import KINDS, Tokenizer, vocab_to_dictionary
from fairseq_ext.tokenizer.spm import SentencePiece


def tokenizer_files(directory: Path) -> tuple[str, ...]:
    """(kind, its files...): what a worker process needs to build the tokenizer of ``directory``."""
    kind = next(kind for kind in KINDS if kind.recognises(directory))
    return (kind.kind, *(str(Path(directory) / name) for name in kind.files))


def _tokenizer(kind: str, *files: str) -> Tokenizer:
    return next(k for k in KINDS if k.kind == kind)(*files)


def make_text_encoder(kind: str, *files: str):
    tokenizer = _tokenizer(kind, *files)
    if isinstance(tokenizer, SentencePiece):
        return SentencePieceTextEncoder(tokenizer)
    return TextBlockEncoder(tokenizer)


def make_id_encoder(kind: str, *files: str):
    tokenizer = _tokenizer(kind, *files)
    if isinstance(tokenizer, SentencePiece):
        return SentencePieceBlockEncoder(tokenizer)
    return IdBlockEncoder(tokenizer)


def encode_files(inputs: Sequence[str], outputs: Sequence[str], files: Sequence[str],
                 keep_empty: bool = False, workers: int = 1, progress: bool = True,
                 warn: Callable[[str], None] = print) -> dict[str, int]:
    """fairseq's multiprocessing_bpe_encoder.py, same output bytes: each set of parallel input lines is
    stripped, dropped if one is empty (unless ``keep_empty``), else GPT-2 encoded to ``"id id ...\\n"``
    (with a SentencePiece model: its pieces, as spm_encode writes them). ``files``: tokenizer_files()."""
    if len(inputs) != len(outputs):
        raise UserInputError(f"{len(inputs)} inputs but {len(outputs)} outputs: give one output per input")
    targets = OutputFiles(outputs, inputs=[*inputs, *files[1:]])
    streams = [open_input(name) for name in inputs]
    stats = {"lines": 0, "encoded": 0, "filtered_empty": 0}
    try:
        readers = [read_line_blocks(stream, name) for stream, name in zip(streams, inputs)]
        tasks = ((columns, keep_empty, nbytes) for columns, nbytes in zip_line_blocks(readers, inputs, warn))
        initargs = (make_text_encoder, *files)
        with targets.open("wb") as sinks, WorkerPool(workers, init_worker, initargs) as pool, \
                progress_bar(input_bytes(inputs), "bpe-encode", progress) as bar:
            for encoded, kept, dropped, nbytes in pool.map(encode_block, tasks):
                for text, sink, name in zip(encoded, sinks, outputs):
                    try:
                        sink.write(text.encode("utf-8"))
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
    + the same fairseq-preprocess. Returns per split: sequences, tokens (eos included), unk."""
    streams = {split: open_input(str(path)) for split, path in raw_files.items()}
    files = tokenizer_files(tokenizer_dir)
    # Workers start before fairseq (torch) is imported: they need only tokenizers, and the import
    # overlaps with their first blocks.
    with WorkerPool(workers, init_worker, (make_id_encoder, *files)) as pool:
        import torch
        from fairseq.data import Dictionary, indexed_dataset

        dictionary = Dictionary.load(str(dict_path))
        dictionary.save(os.path.join(destdir, "dict.txt"))
        tokenizer = _tokenizer(*files)
        # vocabulary id -> dictionary index exactly as fairseq-preprocess looks up the token's text (GPT-2:
        # the id's decimal string; SentencePiece: the piece); the line-end marker becomes eos.
        lookup = vocab_to_dictionary(tokenizer.vocab_symbols(), dictionary.symbols, dictionary.unk())
        marker = tokenizer.vocab_size if isinstance(tokenizer, SentencePiece) else NEWLINE_ID
        lookup = np.append(lookup, dictionary.unk()) if marker == len(lookup) else lookup
        lookup[marker] = dictionary.eos()
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
