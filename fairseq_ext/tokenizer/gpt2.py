"""GPT-2 byte-level BPE with the ids of fairseq's ``gpt2_bpe`` encoder, run by HF ``tokenizers`` (Rust):
the project's first implementation of fairseq_ext.tokenizer.base.Tokenizer. No fairseq import here."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence, Union

import regex
from tokenizers import Encoding, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.base import PathLike, Tokenizer

BPE_FILES = ("encoder.json", "vocab.bpe")
END_OF_TEXT = "<|endoftext|>"
VOCAB_BPE_HEADER = "#version: 0.2"
# fairseq's (= OpenAI's) pre-tokenization pattern, run by the same `regex` module fairseq uses: the
# exact reference for how text is cut into words before BPE.
GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
# Code points that HF tokenizers' copy of that pattern (Oniguruma, an older Unicode version) classes
# differently from `regex` (regex==2026.11.15: letters and digits added in Unicode 15-17 that Oniguruma
# sees as unassigned), found by comparing the two on every code point: find_split_disagreements() below,
# checked by tests/test_bpe_encode.py. Texts holding one are split by GPT2_SPLIT instead.
SPLIT_DISAGREEMENTS = (
    (0x00558, 0x00558), (0x0058B, 0x0058C), (0x0088F, 0x0088F), (0x00C5C, 0x00C5C), (0x00CDC, 0x00CDC),
    (0x0208F, 0x0208F), (0x0209D, 0x0209F), (0x0A7CE, 0x0A7CF), (0x0A7D2, 0x0A7D2), (0x0A7D4, 0x0A7D4),
    (0x0A7DD, 0x0A7DD), (0x0A7E2, 0x0A7E2), (0x0A7F1, 0x0A7F1), (0x0AB6C, 0x0AB6D), (0x107BB, 0x107BF),
    (0x10940, 0x10959), (0x10EC5, 0x10EC7), (0x10ED9, 0x10EEE), (0x11B0A, 0x11B0A), (0x11DB0, 0x11DDB),
    (0x11DE0, 0x11DE9), (0x11DF1, 0x11DF1), (0x1246F, 0x1246F), (0x12475, 0x1247F), (0x12550, 0x12686),
    (0x16EA0, 0x16EB8), (0x16EBB, 0x16ED3), (0x16FF2, 0x16FF6), (0x187F8, 0x187FF), (0x18CD6, 0x18CDA),
    (0x18D09, 0x18D20), (0x18D80, 0x18DF2), (0x18E00, 0x19191), (0x191A0, 0x191D2), (0x1B123, 0x1B128),
    (0x1B168, 0x1B168), (0x1D6A6, 0x1D6A6), (0x1DF1F, 0x1DF24), (0x1DF2B, 0x1DF81), (0x1DF90, 0x1DF96),
    (0x1DFCD, 0x1DFFF), (0x1E6C0, 0x1E6DE), (0x1E6E0, 0x1E6E2), (0x1E6E4, 0x1E6E5), (0x1E6E7, 0x1E6ED),
    (0x1E6F0, 0x1E6F4), (0x1E6FE, 0x1E6FF), (0x2B73A, 0x2B73F), (0x2B81E, 0x2B81E), (0x2CEA2, 0x2CEAD),
    (0x323B0, 0x33479), (0x3D000, 0x3FC3F),
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-unicode map (``bytes_to_unicode`` of fairseq's gpt2_bpe_utils, also HF's ByteLevel):
    printable Latin-1 bytes stand for themselves, the others for chars from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    return {**{byte: chr(byte) for byte in printable},
            **{byte: chr(256 + n) for n, byte in enumerate(others)}}


# Keyed by code point for str.translate on UTF-8 bytes decoded as Latin-1 (one char per byte).
BYTE_TO_UNICODE = _bytes_to_unicode()
_NEEDS_EXACT_SPLIT = regex.compile("[" + "".join(f"\\U{start:08x}-\\U{end:08x}"
                                                 for start, end in SPLIT_DISAGREEMENTS) + "]")


class Gpt2Bpe(Tokenizer):
    """Encodes text to GPT-2 token ids exactly as ``fairseq.data.encoders.gpt2_bpe_utils.Encoder``."""

    kind = "gpt2"
    files = BPE_FILES

    def __init__(self, encoder_json: PathLike, vocab_bpe: PathLike):
        try:
            bpe = models.BPE.from_file(str(encoder_json), str(vocab_bpe))
        except Exception as err:  # tokenizers raises a bare Exception with the parse error
            raise UserInputError(f"cannot read GPT-2 BPE files {encoder_json}, {vocab_bpe}: {err}") from err
        tokenizer = HFTokenizer(bpe)
        # GPT-2's split regex and byte-to-unicode map, no prefix space: what fairseq's encoder does.
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        self.tokenizer = tokenizer
        # The same BPE on words already cut by GPT2_SPLIT: byte mapping only, no second split.
        self.word_tokenizer = HFTokenizer(bpe)
        self.word_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)

    @classmethod
    def from_dir(cls, directory: PathLike) -> Gpt2Bpe:
        return cls(Path(directory) / "encoder.json", Path(directory) / "vocab.bpe")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def vocab_symbols(self) -> list[str]:
        return [str(gpt2_id) for gpt2_id in range(self.vocab_size)]

    def _encode(self, text: str) -> Union[Encoding, _ExactEncoding]:
        if _NEEDS_EXACT_SPLIT.search(text) is None:
            return self.tokenizer.encode(text, add_special_tokens=False)
        return self._encode_exact(text)

    def _encode_exact(self, text: str) -> _ExactEncoding:
        """Split by GPT2_SPLIT, then the same BPE; offsets made absolute (they come per word)."""
        matches = list(GPT2_SPLIT.finditer(text))
        if not matches:
            return _ExactEncoding([], [])
        enc = self.word_tokenizer.encode([m.group() for m in matches], is_pretokenized=True,
                                         add_special_tokens=False)
        return _ExactEncoding(enc.ids, [(start + matches[word].start(), end + matches[word].start())
                                        for (start, end), word in zip(enc.offsets, enc.word_ids)])

    def encode(self, text: str) -> list[int]:
        return self._encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encodes many texts in parallel (Rust threads: RAYON_NUM_THREADS caps them)."""
        texts = list(texts)
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [self._encode_exact(text).ids if _NEEDS_EXACT_SPLIT.search(text) else enc.ids
                for text, enc in zip(texts, encodings)]

    def encode_words(self, words: Sequence[str]) -> list[list[int]]:
        """BPE ids of each word of ``GPT2_SPLIT.findall(text)`` (no further splitting): what
        ``word_tokenizer`` does (byte-to-unicode map, then the BPE model), the map done here by
        ``str.translate`` and the model called directly, several times faster than an Encoding per word."""
        tokenize = self.word_tokenizer.model.tokenize
        mapped = (word.encode("utf-8").decode("latin-1").translate(BYTE_TO_UNICODE) for word in words)
        return [[token.id for token in tokenize(chars)] for chars in mapped]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and, for each, the (start, end) character span in ``text``, leading spaces trimmed."""
        enc = self._encode(text)
        return enc.ids, trim_leading_space(text, enc.offsets)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


class _ExactEncoding(NamedTuple):
    ids: list[int]
    offsets: list[tuple[int, int]]


def find_split_disagreements(bpe: Gpt2Bpe, chunk: int = 8192) -> list[int]:
    """Every code point (surrogates aside) around which HF tokenizers' GPT-2 split differs from GPT2_SPLIT,
    probed as a letter, digit, other and space would reveal it; bisects chunks that differ."""
    probes = ("aC1", "!C!", " Ca")
    pre_tokenizer = bpe.tokenizer.pre_tokenizer

    def agree(chars: str) -> bool:
        text = "\n".join(probe.replace("C", char) for char in chars for probe in probes)
        return [m.span() for m in GPT2_SPLIT.finditer(text)] == [span for _, span in
                                                                  pre_tokenizer.pre_tokenize_str(text)]

    found: list[int] = []

    def scan(chars: str) -> None:
        if agree(chars):
            return
        if len(chars) == 1:
            found.append(ord(chars))
            return
        half = len(chars) // 2
        scan(chars[:half])
        scan(chars[half:])

    code_points = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    for start in range(0, len(code_points), chunk):
        scan(code_points[start:start + chunk])
    return found


def trim_leading_space(text: str, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte-level BPE tokens carry the space before a word; answer spans must not start with it."""
    trimmed = []
    for start, end in offsets:
        while start < end and text[start].isspace():
            start += 1
        trimmed.append((start, end))
    return trimmed


def read_merges(vocab_bpe: PathLike) -> list[tuple[str, str]]:
    """The merges of a vocab.bpe (merges.txt), in order."""
    lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
    return [tuple(line.split()) for line in lines if line and not line.startswith("#version")]


def encoder_from_merges(merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """GPT-2's encoder.json (token -> id) from its merges alone: the 256 byte symbols in byte-to-unicode
    order, then each merge's result in merge order, then <|endoftext|> (GPT-2's own file is exactly
    this, on all 50,257 entries; ``json.dumps`` of it is byte-identical to the official file)."""
    encoder = {symbol: index for index, symbol in enumerate(BYTE_TO_UNICODE.values())}
    for left, right in merges:
        merged = left + right
        if merged in encoder:
            raise UserInputError(f"merge {left!r} {right!r} makes {merged!r} a second time: not GPT-2's "
                                 "byte-level BPE merges")
        encoder[merged] = len(encoder)
    encoder[END_OF_TEXT] = len(encoder)
    return encoder


def write_bpe_files(merges: Sequence[tuple[str, str]], directory: PathLike) -> None:
    """encoder.json and vocab.bpe of ``merges`` into ``directory`` (byte-identical to GPT-2's for its
    merges)."""
    import json

    directory = Path(directory)
    encoder = encoder_from_merges(merges)
    lines = [VOCAB_BPE_HEADER, *(f"{left} {right}" for left, right in merges)]
    (directory / "vocab.bpe").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    (directory / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
