"""Tokenizers behind one interface (base.Tokenizer): GPT-2 BPE (gpt2.py); the kind of a directory is
recognised from its files. ``find_tokenizer_dir`` is the one rule that locates the directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import UserInputError
from fairseq_ext.tokenizer.base import DICTIONARY_FILE, DictionaryTokenizer, PathLike, Tokenizer
from fairseq_ext.tokenizer.dictionary import read_dictionary, read_dictionary_entries, write_dictionary
from fairseq_ext.tokenizer.gpt2 import Gpt2Bpe

KINDS: tuple[type[Tokenizer], ...] = (Gpt2Bpe,)
ENV_VAR = "GPT2_BPE_DIR"
REPO_DIR = Path(__file__).resolve().parents[2] / "gpt2_bpe"  # where `make gpt2-bpe` puts the files
FETCH_HINT = "scripts/get_gpt2_bpe.sh DIR fetches the official GPT-2 BPE files"

__all__ = ["DICTIONARY_FILE", "DictionaryTokenizer", "Gpt2Bpe", "Tokenizer", "find_tokenizer_dir",
           "load_tokenizer", "read_dictionary", "read_dictionary_entries", "tokenizer_kind",
           "write_dictionary"]


def tokenizer_kind(directory: PathLike) -> Optional[type[Tokenizer]]:
    return next((kind for kind in KINDS if kind.recognises(Path(directory))), None)


def _missing(directory: Path, need_dict: bool) -> Optional[str]:
    """What ``directory`` lacks to be a tokenizer directory, or None."""
    if not directory.is_dir():
        return "not a directory"
    if tokenizer_kind(directory) is None:
        wanted = " or ".join(" + ".join(kind.files) for kind in KINDS)
        return f"no tokenizer files ({wanted})"
    if need_dict and not (directory / DICTIONARY_FILE).is_file():
        return f"no {DICTIONARY_FILE}"
    return None


def find_tokenizer_dir(explicit: Optional[PathLike] = None, need_dict: bool = False,
                       fallbacks: Sequence[PathLike] = ()) -> Path:
    """The tokenizer directory: ``explicit`` (--tokenizer/--gpt2-bpe) if given, else the first complete one
    of $GPT2_BPE_DIR, ``fallbacks`` and the repository's gpt2_bpe/ (make gpt2-bpe)."""
    if explicit is not None:
        directory = Path(explicit)
        problem = _missing(directory, need_dict)
        if problem:
            raise UserInputError(f"tokenizer directory {directory}: {problem} ({FETCH_HINT})")
        return directory
    candidates = [os.environ.get(ENV_VAR), *fallbacks, REPO_DIR]
    for candidate in filter(None, candidates):
        if _missing(Path(candidate), need_dict) is None:
            return Path(candidate)
    raise UserInputError(f"no tokenizer directory: pass --gpt2-bpe DIR or set {ENV_VAR} "
                         f"(looked in {', '.join(str(c) for c in filter(None, candidates))}; {FETCH_HINT})")


def load_tokenizer(directory: PathLike) -> Tokenizer:
    kind = tokenizer_kind(directory)
    if kind is None:
        raise UserInputError(f"tokenizer directory {directory}: {_missing(Path(directory), False)}")
    return kind.from_dir(directory)
