"""fairseq ``dict.txt`` read as ``fairseq.data.Dictionary.load`` reads it, without fairseq."""

from __future__ import annotations

from pathlib import Path

from fairseq_ext.cli import UserInputError
from fairseq_ext.tokenizer.base import PathLike

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # indices 0-3, before the file's symbols
UNK_INDEX = 3
OVERWRITE = "#fairseq:overwrite"


def read_dictionary(path: PathLike) -> list[str]:
    """The symbols in index order, specials first; a malformed line or an unflagged duplicate is a
    one-line error naming the line (fairseq raises on both)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"cannot read dictionary {path}: {err}") from None
    symbols = list(SPECIALS)
    seen = set(symbols)
    for number, line in enumerate(lines, 1):
        fields = line.rstrip().rsplit(" ", 1)
        overwrite = False
        if len(fields) == 2 and fields[1] == OVERWRITE:
            overwrite = True
            fields = fields[0].rsplit(" ", 1)
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise UserInputError(f"{path}: line {number}: not a fairseq dictionary line "
                                 f"('<symbol> <count>'): {line[:60]!r}")
        symbol = fields[0]
        if symbol in seen and not overwrite:
            raise UserInputError(f"{path}: line {number}: duplicate symbol {symbol!r} "
                                 f"(add {OVERWRITE} to keep both)")
        seen.add(symbol)
        symbols.append(symbol)
    return symbols
