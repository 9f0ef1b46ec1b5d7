"""SentencePiece (XLM-R's tokenizer) behind the tokenizer interface, and training a model for a corpus.

A SentencePiece directory holds ``sentencepiece.bpe.model`` (XLM-R's file name, whatever the model type)
and ``dict.txt``, the fairseq dictionary of its pieces in XLM-R's layout: the pieces in model id order
after the model's own ``<unk> <s> </s>``, so that a fairseq index is the SentencePiece id + 1 (fairseq's
``<s> <pad> </s> <unk>`` come first), with counts from the training text. The reference encoding is
``SentencePieceProcessor.encode(line, out_type=str)`` (what ``spm_encode --output_format=piece`` writes
and fairseq's ``sentencepiece`` bpe does), each piece then looked up in ``dict.txt``: ids map through the
pieces the same way (``vocab_symbols``), an unknown character, whose piece is not in ``dict.txt``, becoming
``<unk>`` either way.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.base import DICTIONARY_FILE, PathLike, Tokenizer
from fairseq_ext.tokenizer.gpt2 import trim_leading_space

MODEL_FILE = "sentencepiece.bpe.model"
METASPACE = "\u2581"  # "▁", SentencePiece's word-initial space
# sentencepiece's trainer skips longer sentences (its max_sentence_length, in bytes); we count them instead
MAX_SENTENCE_BYTES = 1 << 16
COVERAGE_RANGE = (0.98, 1.0)  # sentencepiece's trainer refuses a character_coverage outside it


def _processor(model_file: PathLike):
    import sentencepiece

    try:
        return sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    except (OSError, RuntimeError) as err:
        raise UserInputError(f"cannot load SentencePiece model {model_file}: {err}") from None


class SentencePiece(Tokenizer):
    kind = "sentencepiece"
    files = (MODEL_FILE,)

    def __init__(self, model_file: PathLike):
        self.model_file = Path(model_file)
        self.processor = _processor(model_file)

    @classmethod
    def from_dir(cls, directory: PathLike) -> SentencePiece:
        return cls(Path(directory) / MODEL_FILE)

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def vocab_symbols(self) -> list[str]:
        return [self.processor.id_to_piece(index) for index in range(self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.processor.encode(list(texts), out_type=int, num_threads=1)

    def encode_pieces(self, text: str) -> list[str]:
        """The reference pieces (``spm_encode --output_format=piece``)."""
        return self.processor.encode(text, out_type=str)

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and character spans in ``text`` (of the original text, before the model's normalization);
        a piece's leading whitespace (its ``▁``) is not part of its span, see place_lone_metaspace."""
        encoding = self.processor.encode(text, out_type="offset_mapping")
        offsets = trim_leading_space(text, encoding["offsets"])
        lone = [piece == METASPACE for piece in encoding["pieces"]]
        return list(encoding["ids"]), place_lone_metaspace(offsets, lone)


def place_lone_metaspace(offsets: Sequence[tuple[int, int]], lone: Sequence[bool]) -> list[tuple[int, int]]:
    """A piece that is only ``▁`` stands for whitespace: an empty span at the start of the next piece.

    sentencepiece gives it the whitespace's span (or an empty one), HF tokenizers' Metaspace the next
    character's; this one rule, applied to both, gives both sides the same offsets (and so the same
    answer texts)."""
    placed = list(offsets)
    for index in range(len(placed) - 1, -1, -1):
        if lone[index]:
            start = placed[index + 1][0] if index + 1 < len(placed) else placed[index][1]
            placed[index] = (start, start)
    return placed


# ----------------------------------------------------------------------------------------------- training

def sample_lines(lines: Iterable[str], max_lines: int, seed: int,
                 max_bytes: int = MAX_SENTENCE_BYTES) -> tuple[list[str], dict[str, int]]:
    """A uniform sample of at most ``max_lines`` non-blank lines (reservoir sampling: memory bounded by the
    sample, whatever the input size), in input order; counts of lines read, blank and too long."""
    rng = random.Random(seed)
    reservoir: list[tuple[int, str]] = []
    counts = {"lines": 0, "blank": 0, "too_long": 0, "candidates": 0}
    for line in lines:
        counts["lines"] += 1
        line = line.strip()
        if not line:
            counts["blank"] += 1
            continue
        if len(line.encode("utf-8")) > max_bytes:
            counts["too_long"] += 1
            continue
        seen = counts["candidates"]
        counts["candidates"] += 1
        if seen < max_lines:
            reservoir.append((seen, line))
        else:
            slot = rng.randrange(seen + 1)
            if slot < max_lines:
                reservoir[slot] = (seen, line)
    reservoir.sort()
    return [line for _, line in reservoir], counts


def train_sentencepiece(sentences: Sequence[str], out_dir: PathLike, vocab_size: int,
                        character_coverage: float = 0.9995, model_type: str = "unigram", seed: int = 1,
                        threads: int = 1, log: Callable[[str], None] = print) -> dict[str, int]:
    """Trains on ``sentences`` and writes OUT_DIR/sentencepiece.bpe.model and OUT_DIR/dict.txt (XLM-R
    layout, counts of each piece in ``sentences``). Returns piece statistics."""
    import io

    import sentencepiece

    if not sentences:
        raise UserInputError("no text to train on (every input line is blank)")
    sentencepiece.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
            character_coverage=character_coverage, model_type=model_type, num_threads=threads,
            max_sentence_length=MAX_SENTENCE_BYTES, input_sentence_size=0, shuffle_input_sentence=False,
            minloglevel=2,
            # XLM-R's ids: <unk> 0, <s> 1, </s> 2, no <pad> (fairseq adds its own specials)
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    except RuntimeError as err:  # e.g. a vocabulary smaller than the characters to cover
        raise UserInputError(f"sentencepiece training failed: {sentencepiece_reason(err)}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(model.getvalue())
    tokenizer = SentencePiece(out_dir / MODEL_FILE)
    counts = [0] * tokenizer.vocab_size
    for ids in tokenizer.processor.encode(list(sentences), out_type=int, num_threads=threads):
        for index in ids:
            counts[index] += 1
    write_dictionary(tokenizer, counts, out_dir / DICTIONARY_FILE)
    unused = sum(1 for index in range(3, tokenizer.vocab_size) if counts[index] == 0)
    log(f"{tokenizer.vocab_size} pieces, {sum(counts)} pieces in the sample, {counts[0]} unknown "
        f"characters, {unused} pieces unused by the sample")
    return {"pieces": tokenizer.vocab_size, "tokens": sum(counts), "unknown": counts[0], "unused": unused}


def sentencepiece_reason(err: RuntimeError) -> str:
    """The reason in sentencepiece's ``INTERNAL: file.cc(75) [check] message``: the message, else (a
    failed check alone) the check."""
    match = re.search(r"\[(.*?)\](?:\s+(.*))?$", str(err).strip(), re.DOTALL)
    if match is None:
        return str(err).strip()
    return (match.group(2) or "").strip() or f"its check {match.group(1)} failed"


def write_dictionary(tokenizer: SentencePiece, counts: Sequence[int], path: PathLike) -> None:
    """XLM-R's dict.txt: every piece after the model's control and unknown pieces, in id order."""
    processor = tokenizer.processor
    lines = [f"{processor.id_to_piece(index)} {counts[index]}\n" for index in range(tokenizer.vocab_size)
             if not (processor.is_control(index) or processor.is_unknown(index))]
    Path(path).write_text("".join(lines), encoding="utf-8")


def existing_model_dir(directory: PathLike) -> Optional[Path]:
    """``directory`` when it already holds a model and its dict.txt (an XLM-R download, say)."""
    directory = Path(directory)
    if (directory / MODEL_FILE).is_file() and (directory / DICTIONARY_FILE).is_file():
        return directory
    return None
