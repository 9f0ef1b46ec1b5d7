"""The tokenizer on both sides: GPT-2 byte-level BPE re-indexed through the fairseq dictionary.

fairseq side: ``encoder.json`` + ``vocab.bpe`` (GPT-2's token strings and merges) and ``dict.txt`` (GPT-2 ids
as symbols, in index order after ``<s> <pad> </s> <unk>``; ``<mask>`` appended by the tasks). HF side: one
vocabulary whose token id is the fairseq index, GPT-2's merges, RoBERTa's special tokens.

GPT-2 tokens missing from the dictionary (a dictionary built from a corpus lacks most of them) are
fairseq's ``<unk>``. They cannot simply get ``<unk>``'s id in the HF tokenizer: HF ``tokenizers`` applies
merges by token id, so several tokens sharing one id would make merges fire on the wrong pieces. They get
*alias* ids after the dictionary instead (``len(dictionary)``, +1, ...), which the model treats as
``<unk>``. With the official ``dict.txt`` there are none. Importing a HF model reverses this: ids up to
``<mask>`` are the dictionary, ids after it aliases.

Each tokenizer kind of fairseq_ext.tokenizer has one class here (``Gpt2Files``, ``SentencePieceFiles``)
with the operations the conversions need; ``for_directory`` picks it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer import tokenizer_kind
from fairseq_ext.tokenizer.dictionary import MASK, UNK_INDEX, check_roberta_symbols
from fairseq_ext.tokenizer.dictionary import SPECIALS as SPECIAL_SYMBOLS  # fairseq indices 0-3 = HF RoBERTa's
from fairseq_ext.tokenizer.gpt2 import read_merges

FAIRSEQ_FILES = ("dict.txt", "encoder.json", "vocab.bpe")
HF_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")


@dataclass
class ExportVocabulary:
    """The HF vocabulary: the fairseq dictionary's symbols as GPT-2 token strings, then the aliases."""

    tokens: list[str]  # HF id -> token string
    dictionary_size: int  # ids below this are fairseq indices (<mask> included, the last of them)
    absent_gpt2_ids: list[int]  # GPT-2 tokens absent from the dictionary, aliased to dictionary_size + i
    literal_symbols: list[str] = field(default_factory=list)  # symbols that are no GPT-2 id (madeupword...)

    @property
    def vocab(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.tokens)}

    @property
    def aliases(self) -> int:
        return len(self.tokens) - self.dictionary_size

    def as_fairseq_indices(self, ids: Sequence[int]) -> list[int]:
        """HF ids with the alias ids folded back to fairseq's <unk>."""
        return [UNK_INDEX if index >= self.dictionary_size else index for index in ids]

    def dictionary_symbols(self, gpt2_ids: dict[str, int]) -> list[str]:
        """The fairseq dictionary (specials and <mask> included) of these tokens: GPT-2 ids as symbols."""
        return [symbol if index < len(SPECIAL_SYMBOLS) or symbol == MASK or symbol in self.literal_symbols
                else str(gpt2_ids[symbol]) for index, symbol in enumerate(self.tokens[:self.dictionary_size])]


def read_gpt2_tokens(bpe_dir: Path) -> list[str]:
    """GPT-2's token strings in id order (encoder.json)."""
    encoder = json.loads((bpe_dir / "encoder.json").read_text(encoding="utf-8"))
    tokens = sorted(encoder, key=encoder.get)
    if [encoder[token] for token in tokens] != list(range(len(tokens))):
        raise UserInputError(f"{bpe_dir / 'encoder.json'}: ids are not 0..{len(tokens) - 1}")
    return tokens


# ------------------------------------------------------------------------------------- fairseq -> HF

def build_export_vocabulary(symbols: Sequence[str], gpt2_tokens: Sequence[str]) -> ExportVocabulary:
    """``symbols``: the dictionary in index order (specials first, ``<mask>`` last); ``gpt2_tokens``: GPT-2's
    token strings in id order (encoder.json)."""
    check_roberta_symbols(symbols)
    tokens, literal_symbols, present = [], [], set()
    for symbol in symbols:
        if symbol.isdigit() and int(symbol) < len(gpt2_tokens):
            present.add(int(symbol))
            tokens.append(gpt2_tokens[int(symbol)])
        else:
            if symbol not in SPECIAL_SYMBOLS and symbol != MASK:
                literal_symbols.append(symbol)
            tokens.append(symbol)
    if not present:
        raise UserInputError("the dictionary holds no GPT-2 token ids: it was not built from GPT-2 BPE text")
    absent = [gpt2_id for gpt2_id in range(len(gpt2_tokens)) if gpt2_id not in present]
    tokens.extend(gpt2_tokens[gpt2_id] for gpt2_id in absent)
    _check_unique(tokens)
    return ExportVocabulary(tokens=tokens, dictionary_size=len(symbols), absent_gpt2_ids=absent,
                            literal_symbols=literal_symbols)


def _check_unique(tokens: Sequence[str]) -> None:
    seen = set()
    duplicate = next((token for token in tokens if token in seen or seen.add(token)), None)
    if duplicate is not None:
        raise UserInputError(f"dictionary symbol {duplicate!r} is also a GPT-2 token: the two cannot share "
                             "one tokenizer vocabulary")


def save_hf_tokenizer(vocabulary: ExportVocabulary, bpe_dir: Path, max_positions: int, out_dir: Path) -> None:
    """tokenizer.json + tokenizer_config.json (transformers), and vocab.json, merges.txt,
    special_tokens_map.json for older transformers and other readers."""
    from transformers import AddedToken, RobertaTokenizer

    # <mask> swallows the space before it, as fairseq's fill_mask encodes "x <mask>" (and roberta-base does)
    mask = AddedToken(MASK, lstrip=True, rstrip=False, normalized=False, special=True)
    tokenizer = RobertaTokenizer(vocab=vocabulary.vocab, merges=read_merges(bpe_dir / "vocab.bpe"),
                                 mask_token=mask, model_max_length=max_positions)
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "vocab.json").write_text(json.dumps(vocabulary.vocab, ensure_ascii=False), encoding="utf-8")
    shutil.copyfile(bpe_dir / "vocab.bpe", out_dir / "merges.txt")
    special_tokens = {name: getattr(tokenizer, name) for name in
                      ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token")}
    special_tokens["mask_token"] = {"content": MASK, "lstrip": True, "rstrip": False, "normalized": False,
                                    "single_word": False}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2) + "\n")


# ------------------------------------------------------------------------------------- HF -> fairseq

def tokenizer_merges(tokenizer) -> list[tuple[str, str]]:
    """The BPE merges of a HF fast tokenizer (its vocab.json/merges.txt or tokenizer.json), in order."""
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend.get("model") or {}
    if model.get("type") != "BPE":
        raise UserInputError(f"the tokenizer is {model.get('type')!r}, not GPT-2's byte-level BPE")
    return [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in model["merges"]]


def import_vocabulary(tokenizer, bpe_dir: Path) -> ExportVocabulary:
    """The HF tokenizer's vocabulary seen as an export of GPT-2 BPE (``bpe_dir``'s encoder.json and
    vocab.bpe) through a fairseq dictionary: ids ``0..<mask>`` are the dictionary, later ids aliases of
    GPT-2 tokens the dictionary lacks. Anything else is a one-line UserInputError."""
    if tokenizer_merges(tokenizer) != read_merges(bpe_dir / "vocab.bpe"):
        raise UserInputError(f"the tokenizer's BPE merges differ from {bpe_dir / 'vocab.bpe'}: it is not "
                             "GPT-2's byte-level BPE (pass the GPT-2 files it was made from with --gpt2-bpe)")
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise UserInputError("the tokenizer's ids are not contiguous from 0")
    if tuple(tokens[:len(SPECIAL_SYMBOLS)]) != SPECIAL_SYMBOLS or MASK not in vocab:
        raise UserInputError(f"the tokenizer's first ids are {' '.join(tokens[:4])}, not "
                             f"{' '.join(SPECIAL_SYMBOLS)}, or it has no {MASK}: not a RoBERTa vocabulary")
    gpt2_ids = {token: index for index, token in enumerate(read_gpt2_tokens(bpe_dir))}
    dictionary_size = vocab[MASK] + 1
    literal = [token for token in tokens[len(SPECIAL_SYMBOLS):dictionary_size - 1] if token not in gpt2_ids]
    if any(symbol.isdigit() for symbol in literal):
        raise UserInputError(f"token {next(s for s in literal if s.isdigit())!r} is no GPT-2 token but would "
                             "read as a GPT-2 id in dict.txt")
    present = {gpt2_ids[token] for token in tokens[:dictionary_size] if token in gpt2_ids}
    aliases = tokens[dictionary_size:]
    strays = [token for token in aliases if token not in gpt2_ids or gpt2_ids[token] in present]
    if strays:
        raise UserInputError(f"{len(strays)} tokens after {MASK} (e.g. {strays[0]!r}) are not GPT-2 tokens "
                             f"absent from the dictionary: fairseq's RoBERTa dictionary ends with {MASK}")
    return ExportVocabulary(tokens=tokens, dictionary_size=dictionary_size,
                            absent_gpt2_ids=[gpt2_ids[token] for token in aliases], literal_symbols=literal)


def write_fairseq_files(vocabulary: ExportVocabulary, bpe_dir: Path, out_dir: Path) -> list[str]:
    """dict.txt (without <mask>, which the tasks add), encoder.json, vocab.bpe; returns the symbols of the
    dictionary as fairseq loads it (with <mask>)."""
    symbols = vocabulary.dictionary_symbols(
        {token: index for index, token in enumerate(read_gpt2_tokens(bpe_dir))})
    # fairseq reads "SYMBOL COUNT"; the counts are not known (and not used by training or binarization)
    lines = [f"{symbol} 0\n" for symbol in symbols[len(SPECIAL_SYMBOLS):-1]]
    (out_dir / "dict.txt").write_text("".join(lines), encoding="utf-8")
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copyfile(bpe_dir / name, out_dir / name)
    return symbols


class Gpt2Files:
    """GPT-2 BPE (encoder.json + vocab.bpe in ``directory``) on both sides of a conversion."""

    kind = "gpt2"
    hf_family = "Roberta"  # the transformers classes: RobertaForMaskedLM, RobertaForQuestionAnswering
    description = "GPT-2 byte-level BPE (RobertaTokenizerFast)"
    fairseq_files = ("encoder.json", "vocab.bpe")

    def __init__(self, directory: Path):
        self.directory = directory

    def export_vocabulary(self, symbols: Sequence[str]) -> ExportVocabulary:
        return build_export_vocabulary(symbols, read_gpt2_tokens(self.directory))

    def save_hf(self, vocabulary: ExportVocabulary, max_positions: int, out_dir: Path) -> None:
        save_hf_tokenizer(vocabulary, self.directory, max_positions, out_dir)

    def import_vocabulary(self, hf_tokenizer) -> ExportVocabulary:
        return import_vocabulary(hf_tokenizer, self.directory)

    def write_fairseq(self, vocabulary: ExportVocabulary, out_dir: Path) -> list[str]:
        return write_fairseq_files(vocabulary, self.directory, out_dir)

    @staticmethod
    def fairseq_bpe_config(model_dir: Path) -> dict:
        """The checkpoint's ``bpe`` section: fairseq's GPT-2 BPE reading the files of ``model_dir`` (its
        defaults would download them)."""
        return {"_name": "gpt2", "gpt2_encoder_json": str(model_dir / "encoder.json"),
                "gpt2_vocab_bpe": str(model_dir / "vocab.bpe")}


class SentencePieceFiles:
    """SentencePiece (sentencepiece.bpe.model, XLM-R's layout): exported as XLM-R's HF tokenizer, whose
    vocabulary is the fairseq dictionary itself (no aliases); importing XLM-R models is not supported yet."""

    kind = "sentencepiece"
    hf_family = "XLMRoberta"  # XLMRobertaForMaskedLM, XLMRobertaForQuestionAnswering
    description = "SentencePiece (XLMRobertaTokenizerFast)"

    def __init__(self, directory: Path):
        self.directory = directory

    def export_vocabulary(self, symbols: Sequence[str]) -> ExportVocabulary:
        check_roberta_symbols(symbols)
        return ExportVocabulary(tokens=list(symbols), dictionary_size=len(symbols), absent_gpt2_ids=[])

    def save_hf(self, vocabulary: ExportVocabulary, max_positions: int, out_dir: Path) -> None:
        from fairseq_ext.export.xlmr_tokenizer import xlmr_tokenizer
        from fairseq_ext.tokenizer.spm import MODEL_FILE

        tokenizer = xlmr_tokenizer(self.directory / MODEL_FILE, vocabulary.tokens, max_positions)
        tokenizer.save_pretrained(str(out_dir))

    def import_vocabulary(self, hf_tokenizer) -> ExportVocabulary:
        raise UserInputError("importing SentencePiece (XLM-R) models is not supported yet: pass a GPT-2 BPE "
                             "directory (--gpt2-bpe) for a RoBERTa")

    write_fairseq = import_vocabulary

    def fairseq_bpe_config(self, model_dir: Path) -> dict:
        return {"_name": "sentencepiece", "sentencepiece_model": str(model_dir / "sentencepiece.bpe.model")}


KINDS = {Gpt2Files.kind: Gpt2Files, SentencePieceFiles.kind: SentencePieceFiles}


def for_directory(directory: Path):
    """The conversion operations of the tokenizer whose files are in ``directory``."""
    kind = tokenizer_kind(directory)
    if kind is None or kind.kind not in KINDS:
        raise UserInputError(f"{directory}: no tokenizer the conversion knows ({', '.join(KINDS)})")
    return KINDS[kind.kind](directory)
