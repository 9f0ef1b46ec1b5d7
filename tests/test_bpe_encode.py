"""scripts/bpe_encode.py against fairseq's own examples/roberta/multiprocessing_bpe_encoder.py: same bytes."""

import io
import random
import subprocess
import sys

import numpy as np
import pytest
import regex

from fairseq_ext.corpus.encoders import NEWLINE_ID, TextBlockEncoder
from fairseq_ext.corpus.indexed import IdBlockEncoder
from fairseq_ext.corpus.reading import read_line_blocks, zip_line_blocks
from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.gpt2 import SPLIT_DISAGREEMENTS, Gpt2Bpe, find_split_disagreements
from tests.conftest import command, shared_path
from tests.corpus_fixtures import edge_case_text, run_fairseq_encoder

bpe_encode = command("bpe_encode")


def encode_both(tmp_path, gpt2_bpe_dir, inputs, *flags):
    """Runs fairseq's encoder (in this process: fairseq is imported once) and our CLI, 2 workers each,
    on ``inputs``; returns both outputs' bytes."""
    results = {}
    for name in ("fairseq", "ours"):
        outputs = [tmp_path / f"{name}.{i}.bpe" for i in range(len(inputs))]
        args = ["--encoder-json", str(gpt2_bpe_dir / "encoder.json"), "--vocab-bpe",
                str(gpt2_bpe_dir / "vocab.bpe"), "--workers", "2", "--inputs", *map(str, inputs),
                "--outputs", *map(str, outputs), *flags]
        if name == "fairseq":
            run_fairseq_encoder(args)
        else:
            subprocess.run([sys.executable, "scripts/bpe_encode.py", "--quiet", *args], check=True,
                           capture_output=True)
        results[name] = [path.read_bytes() for path in outputs]
    return results["fairseq"], results["ours"]


@pytest.mark.parametrize("keep_empty", [True, False])
def test_same_bytes_as_fairseq_on_wiki_and_edge_cases(tmp_path, gpt2_bpe_dir, edge_case_file, keep_empty):
    wiki = shared_path("data", "wiki", "wiki-paragraphs.txt")
    flags = ["--keep-empty"] if keep_empty else []
    for source in (wiki, edge_case_file):
        reference, ours = encode_both(tmp_path, gpt2_bpe_dir, [source], *flags)
        assert reference[0].count(b"\n") > 90
        assert ours == reference, source


def test_same_bytes_as_fairseq_on_kjv_slice(tmp_path, gpt2_bpe_dir):
    kjv = tmp_path / "kjv-slice.txt"
    with open(shared_path("data", "kjv", "kjv.txt"), "rb") as source:
        kjv.write_bytes(b"".join(source.readlines()[::7]))  # ~4,400 verses from all books
    reference, ours = encode_both(tmp_path, gpt2_bpe_dir, [kjv])
    assert reference[0].count(b"\n") > 4000
    assert ours == reference


@pytest.mark.parametrize("keep_empty", [True, False])
def test_parallel_inputs_drop_lines_together_like_fairseq(tmp_path, gpt2_bpe_dir, edge_case_file, keep_empty):
    """Several inputs are zipped line by line: a row with an empty line is dropped from every output,
    and the longer input is cut at the shorter one's length (we also warn)."""
    other = tmp_path / "other.txt"
    lines = shared_path("data", "wiki", "wiki-paragraphs.txt").read_text(encoding="utf-8").split("\n")[:80]
    other.write_text("\n".join(lines), encoding="utf-8")
    flags = ["--keep-empty"] if keep_empty else []
    reference, ours = encode_both(tmp_path, gpt2_bpe_dir, [edge_case_file, other], *flags)
    assert ours == reference
    rows = reference[0].count(b"\n")
    assert rows == reference[1].count(b"\n") and (rows == 80 if keep_empty else rows < 80)


def test_block_encoder_matches_fairseq_encoder_on_random_text(gpt2_bpe_dir):
    """Random lines over an alphabet of the hard cases (spaces and all whitespace kinds next to each
    other, apostrophes, letters, digits, marks...), in many small blocks: the piece cache must give
    exactly fairseq's Encoder.encode of each stripped line."""
    from fairseq.data.encoders.gpt2_bpe import get_encoder

    reference = get_encoder(str(gpt2_bpe_dir / "encoder.json"), str(gpt2_bpe_dir / "vocab.bpe"))
    encoder = TextBlockEncoder(Gpt2Bpe.from_dir(gpt2_bpe_dir), cache_entries=500)
    alphabet = list("    aAsStTdD'' 1234.,!?-\t\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000é\u0301日😀") + [
        "\u0558", "\U00010940", " the", " don't", "'ll", "  ", "\t "]
    rng = random.Random(0)
    for _ in range(60):
        lines = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))).strip() for _ in range(50)]
        expected = "".join(" ".join(map(str, reference.encode(line))) + "\n" for line in lines)
        assert encoder.encode_lines(lines) == expected.encode("ascii")


def text_mode_lines(data: bytes) -> list[str]:
    """Lines as fairseq's encoder sees them: text mode, universal newlines, terminator removed."""
    with io.TextIOWrapper(io.BytesIO(data), encoding="utf-8") as reference:
        return [line[:-1] if line.endswith("\n") else line for line in reference]


def test_line_reading_matches_text_mode(tmp_path):
    """Byte blocks cut anywhere (tiny blocks here) give the lines of Python's text mode."""
    text = edge_case_text() + "\r\n\r\r\n\n\r"
    data = text.encode("utf-8")
    expected = text_mode_lines(data)
    for block_bytes in (1, 7, 64, 4096):
        blocks = list(read_line_blocks(io.BytesIO(data), "edge", block_bytes=block_bytes))
        assert [line for lines, _ in blocks for line in lines] == expected
        assert sum(nbytes for _, nbytes in blocks) == len(data)


def test_parallel_line_blocks_are_zip_of_text_mode_lines():
    """Inputs read in blocks of different sizes still pair line i with line i, stopping at the shortest."""
    texts = [edge_case_text(), "one\r\ntwo\n\nfour\rfive\n" * 20]
    expected = list(zip(*(text_mode_lines(text.encode("utf-8")) for text in texts)))
    readers = [read_line_blocks(io.BytesIO(text.encode("utf-8")), f"input{i}", block_bytes=size)
               for i, (text, size) in enumerate(zip(texts, (13, 7)))]
    warnings = []
    blocks = zip_line_blocks(readers, ["a", "b"], warnings.append)
    rows = [row for columns, _ in blocks for row in zip(*columns)]
    assert rows == expected and len(warnings) == 1 and "a has more lines" in warnings[0]


def test_id_blocks_match_text_blocks(gpt2_bpe_dir):
    """The binarizer's encoder: each line's ids then the end marker, empty lines as the marker alone
    (at the start, in runs, at the end), the same ids as the text encoder."""
    bpe = Gpt2Bpe.from_dir(gpt2_bpe_dir)
    lines = ["", "", "First line.", "", "", "Second  line\twith  spaces", "third", "", ""]
    data, sizes = IdBlockEncoder(bpe).encode_lines(lines)
    text_rows = TextBlockEncoder(bpe).encode_lines(lines).split(b"\n")[:-1]
    assert sizes.sum() == len(data) and len(sizes) == len(lines)
    for sequence, row in zip(np.split(data, np.cumsum(sizes)[:-1]), text_rows):
        assert sequence[-1] == NEWLINE_ID and sequence[:-1].tolist() == [int(i) for i in row.split()]


def test_bad_input_errors(tmp_path, gpt2_bpe_dir):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nstill fine\r\nbroken \xff here\n")
    out = tmp_path / "out"
    cases = {
        ("--inputs", bad, "--outputs", out): f"{bad}: line 3: invalid UTF-8",
        ("--inputs", tmp_path / "missing.txt", "--outputs", out): "input not found",
        ("--inputs", bad, bad, "--outputs", out): "2 inputs but 1 outputs",
    }
    for args, message in cases.items():
        with pytest.raises(UserInputError, match=message) as error:
            bpe_encode.main(["--quiet", "--encoder-json", str(gpt2_bpe_dir / "encoder.json"), "--vocab-bpe",
                             str(gpt2_bpe_dir / "vocab.bpe"), "--workers", "1", *map(str, args)])
        assert "\n" not in str(error.value)


def test_cli_error_is_one_line(tmp_path, gpt2_bpe_dir):
    args = ["--inputs", tmp_path / "missing.txt", "--outputs", tmp_path / "out",
            "--encoder-json", gpt2_bpe_dir / "encoder.json", "--vocab-bpe", gpt2_bpe_dir / "vocab.bpe"]
    done = subprocess.run([sys.executable, "scripts/bpe_encode.py", *map(str, args)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == f"bpe_encode.py: error: input not found: {tmp_path / 'missing.txt'}\n"


def test_gpt2_bpe_matches_fairseq_around_oniguruma_disagreements(gpt2_bpe_dir):
    """HF's regex (Oniguruma) sees recent letters as punctuation (so "\u0558's" loses its "'s"
    contraction); Gpt2Bpe routes texts with them to the exact split and agrees with fairseq."""
    from fairseq.data.encoders.gpt2_bpe import get_encoder

    reference = get_encoder(str(gpt2_bpe_dir / "encoder.json"), str(gpt2_bpe_dir / "vocab.bpe"))
    bpe = Gpt2Bpe.from_dir(gpt2_bpe_dir)
    texts = [f"{prefix}{chr(code)}{suffix}" for start, end in SPLIT_DISAGREEMENTS for code in (start, end)
             for prefix, suffix in ((" ", "'s"), ("ab", "cd!"), (" 1", "2'll"))]
    assert sum(bpe.tokenizer.encode(text).ids != reference.encode(text) for text in texts) > 50  # real bug
    assert bpe.encode_batch(texts) == [reference.encode(text) for text in texts]
    assert [bpe.encode_with_offsets(text)[0] for text in texts] == [reference.encode(text) for text in texts]


def test_exact_split_gives_hf_offsets(gpt2_bpe_dir):
    """Where both splits agree, the exact path's ids and character offsets are HF's own."""
    bpe = Gpt2Bpe.from_dir(gpt2_bpe_dir)
    text = edge_case_text()
    wiki = shared_path("data", "wiki", "wiki-paragraphs.txt").read_text(encoding="utf-8").split("\n")
    for line in wiki[:60] + [text[:2000], text[-3000:]]:
        exact, fast = bpe._encode_exact(line), bpe.tokenizer.encode(line, add_special_tokens=False)
        assert (exact.ids, exact.offsets) == (fast.ids, fast.offsets)


def test_every_regex_whitespace_is_stripped_by_python():
    """BlockEncoder relies on it: a stripped line never ends with a char that GPT2_SPLIT sees as
    whitespace, so the joining line break stays a token of its own."""
    space = regex.compile(r"\s")
    assert [c for c in range(0x110000) if space.match(chr(c)) and not chr(c).isspace()] == []


@pytest.mark.slow
def test_split_disagreements_are_exactly_the_listed_code_points(gpt2_bpe_dir):
    """Exhaustive over all code points: the list in fairseq_ext/bpe.py is complete and exact for the
    pinned tokenizers and regex (regenerate it with find_split_disagreements() after upgrading them)."""
    listed = [c for start, end in SPLIT_DISAGREEMENTS for c in range(start, end + 1)]
    assert find_split_disagreements(Gpt2Bpe.from_dir(gpt2_bpe_dir)) == listed


def test_help(capsys):
    with pytest.raises(SystemExit):
        bpe_encode.main(["--help"])
    help_text = capsys.readouterr().out
    assert all(flag in help_text for flag in ("--encoder-json", "--vocab-bpe", "--inputs", "--outputs",
                                              "--keep-empty", "--workers"))


@pytest.mark.slow
def test_bpe_merges_match_fairseq_on_every_code_point(gpt2_bpe_dir):
    """The corpus path splits with fairseq's regex and merges with HF's BPE: exhaustive check of the
    merges on every code point alone and after a space (every 1- to 5-byte word of one char)."""
    from fairseq.data.encoders.gpt2_bpe import get_encoder

    reference = get_encoder(str(gpt2_bpe_dir / "encoder.json"), str(gpt2_bpe_dir / "vocab.bpe"))
    bpe = Gpt2Bpe.from_dir(gpt2_bpe_dir)
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for start in range(0, len(chars), 65536):
        words = [word for char in chars[start:start + 65536] for word in (char, " " + char)]
        expected = [[reference.encoder[token] for token in reference.bpe(
            "".join(reference.byte_encoder[b] for b in word.encode("utf-8"))).split(" ")] for word in words]
        assert bpe.encode_words(words) == expected
