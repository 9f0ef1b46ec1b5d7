"""Tokenizers behind one interface (base.Tokenizer): GPT-2 BPE (gpt2.py) and SentencePiece (spm.py); the
kind of a directory is recognised from its files. ``find_tokenizer_dir`` is the one rule that locates the
directory; ``write_record``/``check_record`` make a data directory remember the tokenizer that made it."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.checkout import checkout_path
from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.base import (
    DICTIONARY_FILE,
    DictionaryTokenizer,
    PathLike,
    Tokenizer,
    vocab_to_dictionary,
)
from fairseq_ext.tokenizer.dictionary import read_dictionary, read_dictionary_entries, write_dictionary
from fairseq_ext.tokenizer.gpt2 import Gpt2Bpe
from fairseq_ext.tokenizer.spm import SentencePiece

KINDS: tuple[type[Tokenizer], ...] = (Gpt2Bpe, SentencePiece)
ENV_VAR = "GPT2_BPE_DIR"
REPO_DIR = checkout_path("gpt2_bpe")  # the checkout's copy (vocab.bpe, dict.txt; make gpt2-bpe: encoder.json)
FETCH_HINT = ("the checkout's gpt2_bpe/ has them after `make gpt2-bpe`; scripts/get_gpt2_bpe.sh DIR fetches "
              "the official GPT-2 BPE files; scripts/train_spm.py trains a SentencePiece model")
RECORD_FILE = "tokenizer.json"  # in a data directory: the tokenizer that made it

__all__ = ["DICTIONARY_FILE", "DictionaryTokenizer", "Gpt2Bpe", "KINDS", "RECORD_FILE", "SentencePiece",
           "Tokenizer", "add_tokenizer_argument", "check_record", "default_tokenizer_dir",
           "find_tokenizer_dir", "load_tokenizer", "read_dictionary", "read_dictionary_entries",
           "tokenizer_kind", "vocab_to_dictionary", "write_dictionary", "write_record"]


def add_tokenizer_argument(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``--tokenizer DIR`` (``--gpt2-bpe DIR`` is the same option) as ``args.tokenizer``."""
    parser.add_argument("--tokenizer", "--gpt2-bpe", dest="tokenizer", metavar="DIR",
                        help="tokenizer directory, its kind recognised from its files: GPT-2 BPE "
                             "(encoder.json, vocab.bpe) or SentencePiece (sentencepiece.bpe.model: "
                             f"scripts/train_spm.py's output, or xlmr.base){what} "
                             f"(default: ${ENV_VAR}, then gpt2_bpe/)")


def record(directory: PathLike) -> dict:
    """Which tokenizer ``directory`` holds: its kind and a fingerprint of its files."""
    kind = tokenizer_kind(directory)
    digest = hashlib.sha256()
    for name in kind.files:
        digest.update((Path(directory) / name).read_bytes())
    return {"kind": kind.kind, "sha256": digest.hexdigest(), "directory": str(Path(directory).resolve())}


def write_record(data_dir: PathLike, directory: PathLike) -> None:
    (Path(data_dir) / RECORD_FILE).write_text(json.dumps(record(directory), indent=2) + "\n")


def check_record(data_dir: PathLike, directory: PathLike, what: str) -> None:
    """A one-line error when ``data_dir`` was made by another tokenizer than ``directory``'s (data made
    before records existed passes)."""
    path = Path(data_dir) / RECORD_FILE
    if not path.is_file():
        return
    made_by, given = json.loads(path.read_text()), record(directory)
    if (made_by["kind"], made_by["sha256"]) != (given["kind"], given["sha256"]):
        raise UserInputError(f"{what} was made with the {made_by['kind']} tokenizer {made_by['directory']} "
                             f"(sha256 {made_by['sha256'][:12]}), not with {directory} ({given['kind']}, "
                             f"sha256 {given['sha256'][:12]}): use the tokenizer the data was prepared with")


def tokenizer_kind(directory: PathLike) -> Optional[type[Tokenizer]]:
    return next((kind for kind in KINDS if kind.recognises(Path(directory))), None)


def _missing(directory: Path, need_dict: bool) -> Optional[str]:
    """What ``directory`` lacks to be a tokenizer directory, or None."""
    if not directory.is_dir():
        return "not a directory"
    if tokenizer_kind(directory) is None:
        if (directory / "vocab.bpe").is_file() and not (directory / "encoder.json").exists():
            return (f"no encoder.json: rebuild it from vocab.bpe (offline) with `python -m "
                    f"fairseq_ext.commands.gpt2_encoder {directory}/vocab.bpe {directory}/encoder.json`")
        wanted = " or ".join(" + ".join(kind.files) for kind in KINDS)
        return f"no tokenizer files ({wanted})"
    if need_dict and not (directory / DICTIONARY_FILE).is_file():
        return f"no {DICTIONARY_FILE}"
    return None


def find_tokenizer_dir(explicit: Optional[PathLike] = None, need_dict: bool = False,
                       fallbacks: Sequence[PathLike] = ()) -> Path:
    """The tokenizer directory: ``explicit`` (--tokenizer/--gpt2-bpe) if given, else the first complete one
    of $GPT2_BPE_DIR, ``fallbacks`` and the checkout's gpt2_bpe/."""
    if explicit is not None:
        directory = Path(explicit)
        problem = _missing(directory, need_dict)
        if problem:
            raise UserInputError(f"tokenizer directory {directory}: {problem} ({FETCH_HINT})")
        return directory
    found = default_tokenizer_dir(need_dict, fallbacks)
    if found is not None:
        return found
    candidates = [os.environ.get(ENV_VAR), *fallbacks, REPO_DIR]
    raise UserInputError(f"no tokenizer directory: pass --tokenizer DIR or set {ENV_VAR} "
                         f"(looked in {', '.join(str(c) for c in filter(None, candidates))}; {FETCH_HINT})")


def default_tokenizer_dir(need_dict: bool = False, fallbacks: Sequence[PathLike] = ()) -> Optional[Path]:
    """The first complete tokenizer directory of $GPT2_BPE_DIR, ``fallbacks`` and the repository's
    gpt2_bpe/, or None."""
    for candidate in filter(None, [os.environ.get(ENV_VAR), *fallbacks, REPO_DIR]):
        if _missing(Path(candidate), need_dict) is None:
            return Path(candidate)
    return None


def load_tokenizer(directory: PathLike) -> Tokenizer:
    kind = tokenizer_kind(directory)
    if kind is None:
        raise UserInputError(f"tokenizer directory {directory}: {_missing(Path(directory), False)}")
    return kind.from_dir(directory)
