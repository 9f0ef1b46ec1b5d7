"""fairseq ``dict.txt`` read as ``fairseq.data.Dictionary.load`` reads it and written as
``Dictionary.save`` writes it, without fairseq; and the RoBERTa dictionary, declared once: the specials
(indices 0-3), the file's symbols, then ``<mask>``, which fairseq's masked_lm task (and so every RoBERTa
checkpoint, and our squad2 task) appends to dict.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.base import PathLike

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # indices 0-3, before the file's symbols
UNK_INDEX = 3
EOS_INDEX = 2
OVERWRITE = "#fairseq:overwrite"
MASK = "<mask>"  # the last symbol of a RoBERTa dictionary, not in dict.txt


def read_dictionary_entries(path: PathLike) -> list[tuple[str, int]]:
    """The file's (symbol, count) entries in order (the specials not included); a malformed line or an
    unflagged duplicate is a one-line error naming the line (fairseq raises on both). Parsed as fairseq
    does: text-mode lines (universal newlines, not ``str.splitlines``), ``rstrip``, the count after the
    last space read by ``int`` (so ``+7`` and ``007`` are 7, and ``Dictionary.save`` writes 7)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.readlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"cannot read dictionary {path}: {err}") from None
    entries = []
    seen = set(SPECIALS)
    for number, line in enumerate(lines, 1):
        fields = line.rstrip().rsplit(" ", 1)
        overwrite = False
        if len(fields) == 2 and fields[1] == OVERWRITE:
            overwrite = True
            fields = fields[0].rsplit(" ", 1)
        try:
            symbol, count = fields[0], int(fields[1])
        except (IndexError, ValueError):
            raise UserInputError(f"{path}: line {number}: not a fairseq dictionary line "
                                 f"('<symbol> <count>'): {line.rstrip()[:60]!r}") from None
        if symbol in seen and not overwrite:
            raise UserInputError(f"{path}: line {number}: duplicate symbol {symbol!r} "
                                 f"(add {OVERWRITE} to keep both)")
        seen.add(symbol)
        entries.append((symbol, count))
    if not entries:  # every token would become <unk>
        raise UserInputError(f"dictionary {path} is empty: a fairseq dict.txt lists one '<symbol> <count>' "
                             "per line (GPT-2 BPE: gpt2_bpe/dict.txt; SentencePiece: train_spm.py's)")
    return entries


# The share of a corpus's tokens that may be missing from its dictionary (and become <unk>) before a
# tool refuses it: a few per mille is usual (rare characters a SentencePiece model does not cover); a
# wrong dictionary or text that was not tokenized gives 90% and more.
MAX_UNKNOWN_SHARE = 0.05
UNKNOWN_SAMPLE_LINES = 2000  # lines of a split looked at before any work


def add_unknown_argument(parser) -> None:
    """``--max-unk``: the bound of check_unknown_share, declared once for the corpus tools."""
    from fairseq_ext.cli import ratio

    parser.add_argument("--max-unk", type=ratio(), default=MAX_UNKNOWN_SHARE, metavar="SHARE",
                        help="refuse a corpus of which more than this share of tokens is not in the "
                             "dictionary and would become <unk> (default %(default)s; 1 accepts any)")


def check_unknown_share(unknown: int, tokens: int, bound: float, what: str, hint: str) -> None:
    """More than ``bound`` of ``tokens`` unknown to the dictionary: a one-line error saying why it is
    likely (``hint``) and how to accept it anyway."""
    if tokens and unknown / tokens > bound:
        share = 100 * unknown / tokens
        raise UserInputError(f"{what}: {unknown} of {tokens} tokens ({share:.1f}%) are not in the "
                             f"dictionary and would become <unk> (more than --max-unk {bound:g}): {hint} "
                             "(--max-unk 1 accepts it)")


def read_dictionary(path: PathLike) -> list[str]:
    """The symbols in index order, specials first."""
    return list(SPECIALS) + [symbol for symbol, _ in read_dictionary_entries(path)]


def check_same_dictionary(given: PathLike, own: PathLike, what: str, remedy: str) -> None:
    """``given`` must hold the symbols, in the same order, of ``own``, the model's own dictionary: a
    same-size dictionary in another order passes every size check and maps the ids to the wrong tokens
    (wrong exports, training on scrambled ids). ``what`` names ``given`` in the message; ``remedy`` ends
    it."""
    given_symbols, own_symbols = read_dictionary(given), read_dictionary(own)
    if given_symbols == own_symbols:
        return
    index = next((i for i, (a, b) in enumerate(zip(given_symbols, own_symbols)) if a != b),
                 min(len(given_symbols), len(own_symbols)))
    line = index - len(SPECIALS) + 1
    sizes = f"{len(given_symbols)} vs {len(own_symbols)} symbols"
    raise UserInputError(f"{what} {given} differs from {own}, the dictionary the model was trained with, "
                         f"from line {line} on ({sizes}): {remedy}")


def write_dictionary(entries: Sequence[tuple[str, int]], path: PathLike) -> None:
    """``Dictionary.save``: one ``symbol count`` line per non-special entry, flags not written (so a
    ``#fairseq:overwrite`` line is saved as a plain duplicate, as fairseq-preprocess saves it)."""
    with open(path, "w", encoding="utf-8") as stream:
        stream.writelines(f"{symbol} {count}\n" for symbol, count in entries)


def roberta_symbols(path: PathLike) -> list[str]:
    """The symbols of the RoBERTa dictionary of ``path`` (a dict.txt), in index order: specials, the
    file's symbols, ``<mask>`` (not added again if the file has it)."""
    symbols = read_dictionary(path)
    return symbols if MASK in symbols else symbols + [MASK]


def load_roberta_dictionary(path: PathLike):
    """The same as a ``fairseq.data.Dictionary`` (fairseq imported here, by the fairseq side only):
    ``Dictionary.load`` and ``add_symbol("<mask>")``, as fairseq's masked_lm task builds it, so that
    embedding sizes match the pretrained model. fairseq's own errors (ValueError, RuntimeError) pass."""
    from fairseq.data import Dictionary

    dictionary = Dictionary.load(str(path))
    dictionary.add_symbol(MASK)
    return dictionary


def check_roberta_symbols(symbols: Sequence[str], what: str = "dictionary") -> None:
    """``symbols`` (a dictionary in index order) must have a RoBERTa dictionary's shape: the specials
    first, ``<mask>`` last; else a UserInputError naming ``what``."""
    if tuple(symbols[:len(SPECIALS)]) != SPECIALS or symbols[-1] != MASK:
        raise UserInputError(f"{what} does not start with {' '.join(SPECIALS)} and end with {MASK} (not a "
                             "fairseq RoBERTa dictionary)")
