"""The two corpus tools' pipelines: bpe-encode (text ids, fairseq's encoder output) and binarize
(fairseq-preprocess output), both streaming through the worker pool."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fairseq_ext.cli import UserInputError, progress_bar
from fairseq_ext.corpus.encoders import NEWLINE_ID, IdBlockEncoder, TextBlockEncoder
from fairseq_ext.corpus.pool import WorkerPool, encode_block, init_worker
from fairseq_ext.corpus.reading import input_bytes, open_input, read_line_blocks, zip_line_blocks
from fairseq_ext.tokenizer.gpt2 import Gpt2Bpe


def make_text_encoder(encoder_json: str, vocab_bpe: str) -> TextBlockEncoder:
    return TextBlockEncoder(Gpt2Bpe(encoder_json, vocab_bpe))


def make_id_encoder(encoder_json: str, vocab_bpe: str) -> IdBlockEncoder:
    return IdBlockEncoder(Gpt2Bpe(encoder_json, vocab_bpe))


def encode_files(inputs: Sequence[str], outputs: Sequence[str], encoder_json: str, vocab_bpe: str,
                 keep_empty: bool = False, workers: int = 1, progress: bool = True,
                 warn: Callable[[str], None] = print) -> dict[str, int]:
    """fairseq's multiprocessing_bpe_encoder.py, same output bytes: each set of parallel input lines is
    stripped, dropped if one is empty (unless ``keep_empty``), else GPT-2 encoded to ``"id id ...\\n"``."""
    if len(inputs) != len(outputs):
        raise UserInputError(f"{len(inputs)} inputs but {len(outputs)} outputs: give one output per input")
    streams = [open_input(name) for name in inputs]
    sinks = [sys.stdout.buffer if name == "-" else open(name, "wb") for name in outputs]
    stats = {"lines": 0, "encoded": 0, "filtered_empty": 0}
    try:
        readers = [read_line_blocks(stream, name) for stream, name in zip(streams, inputs)]
        tasks = ((columns, keep_empty, nbytes) for columns, nbytes in zip_line_blocks(readers, inputs, warn))
        initargs = (make_text_encoder, str(encoder_json), str(vocab_bpe))
        with WorkerPool(workers, init_worker, initargs) as pool, \
                progress_bar(input_bytes(inputs), "bpe-encode", progress) as bar:
            for encoded, kept, dropped, nbytes in pool.map(encode_block, tasks):
                for text, sink in zip(encoded, sinks):
                    sink.write(text.encode("ascii"))
                stats["encoded"] += kept
                stats["filtered_empty"] += dropped
                bar.update(nbytes)
    finally:
        for stream in streams:
            if stream is not sys.stdin.buffer:
                stream.close()
        for sink in sinks:
            if sink is sys.stdout.buffer:
                sink.flush()
            else:
                sink.close()
    stats["lines"] = stats["encoded"] + stats["filtered_empty"]
    return stats


def binarize_files(raw_files: dict[str, str], destdir: str, encoder_json: str, vocab_bpe: str, dict_path: str,
                   keep_empty: bool = True, workers: int = 1, progress: bool = True
                   ) -> dict[str, dict[str, int]]:
    """Raw text splits -> ``DESTDIR/{split}.bin/.idx`` and ``dict.txt``, byte-identical to
    multiprocessing_bpe_encoder.py (--keep-empty as given) + ``fairseq-preprocess --only-source --srcdict``
    (mmap dataset), in one streaming pass. Returns per split: sequences, tokens (eos included), unk."""
    streams = {split: open_input(str(path)) for split, path in raw_files.items()}
    # Workers start before fairseq (torch) is imported: they need only tokenizers, and the import
    # overlaps with their first blocks.
    with WorkerPool(workers, init_worker, (make_id_encoder, str(encoder_json), str(vocab_bpe))) as pool:
        import torch
        from fairseq.data import Dictionary, indexed_dataset

        dictionary = Dictionary.load(str(dict_path))
        os.makedirs(destdir, exist_ok=True)
        dictionary.save(os.path.join(destdir, "dict.txt"))
        vocab_size = len(json.loads(Path(encoder_json).read_text(encoding="utf-8")))
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
