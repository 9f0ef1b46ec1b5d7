"""Documents (runs of non-blank lines) and their random assignment to train/valid/test."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from fairseq_ext.corpus.reading import read_line_blocks


def iter_documents(files: Sequence[Path], errors: str = "strict", hint: str = "",
                   counts: Optional[dict] = None, on_bytes: Callable[[int], None] = lambda nbytes: None,
                   names: Optional[Mapping[Path, Path]] = None) -> Iterator[list[str]]:
    """Documents of the files, in order: runs of lines that are not blank (``line.strip()`` non-empty,
    what fairseq's encoder keeps); blank lines and the end of a file separate them. ``names``: how error
    messages name a file (the input a temporary copy was made of)."""
    for path in files:
        with open(path, "rb") as stream:
            document: list[str] = []
            for lines, nbytes in read_line_blocks(stream, str((names or {}).get(path, path)), errors, hint,
                                                  counts):
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
