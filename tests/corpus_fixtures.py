"""Session fixtures for the corpus tests (and the stages built on them)."""

import contextlib
import io
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_ext.corpus.reading import fairseq_encoder_script
from tests.conftest import REPO, shared_path

FAIRSEQ_ENCODER = fairseq_encoder_script()


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """Runs scripts/SCRIPT with this interpreter; fails the test with its stderr if it fails."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{script} {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr}")
    return done


def run_fairseq_encoder(args: list) -> None:
    """fairseq's multiprocessing_bpe_encoder.py run as a script, but in this process (its workers fork
    from it), so that fairseq's import is paid once per test session."""
    argv = sys.argv
    sys.argv = [str(FAIRSEQ_ENCODER), *map(str, args)]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            runpy.run_path(str(FAIRSEQ_ENCODER), run_name="__main__")
    finally:
        sys.argv = argv


@pytest.fixture(scope="session")
def wiki_raw_dir(tmp_path_factory) -> Path:
    """The shared wiki paragraphs split by documents (articles): 17 train, 2 valid, 1 test."""
    outdir = tmp_path_factory.mktemp("wiki-raw")
    run_script("split_data.py", "--inputs", shared_path("data", "wiki", "wiki-paragraphs.txt"),
               "--outdir", outdir, "--valid-docs", "2", "--test-docs", "1", "--seed", "1", "--quiet")
    return outdir


@pytest.fixture(scope="session")
def wiki_data_bin(wiki_raw_dir, gpt2_bpe_dir, tmp_path_factory) -> Path:
    """fairseq data-bin of the wiki splits (train/valid/test .bin/.idx, dict.txt), GPT-2 BPE with empty
    lines kept between documents (RoBERTa's recipe, for --sample-break-mode complete_doc)."""
    destdir = tmp_path_factory.mktemp("wiki-data-bin")
    run_script("prepare_corpus.py", "--raw-dir", wiki_raw_dir, "--gpt2-bpe", gpt2_bpe_dir,
               "--destdir", destdir, "--workers", "2", "--quiet")
    return destdir


def edge_case_text() -> str:
    """Hard input for a GPT-2 encoder that must match fairseq's byte for byte: every line ending
    (\\n, \\r\\n, lone \\r), Python-only whitespace (\\x1c-\\x1f, \\x85, \\u2028...) inside and around
    lines, whitespace-only lines, runs of spaces and tabs, contractions, digits of many scripts,
    combining marks, CJK, emoji sequences, letters that HF's Oniguruma does not know, a sample of
    every Unicode plane, and very long lines."""
    whitespace = "\t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000"
    lines = [
        "\ufeffA line after a byte order mark.",
        "Plain ASCII: The quick brown fox jumps over the lazy dog.",
        "  leading and trailing spaces  ",
        "\ttabs\tinside\t\tand around\t",
        "runs of spaces:  two   three    four          ten",
        "space before tab \t x and tab before space\t y and both \t \t z",
        "a" + "".join(f"{ch}b{ch}{ch}c {ch}d{ch} " for ch in whitespace) + "end",
        "".join(whitespace) + "stripped on both sides" + "".join(reversed(whitespace)),
        "".join(whitespace),
        "",
        "   ",
        "Contractions: don't DON'T He'S she'll WE'LL they're I'm you'd it's 's 't ''s '' ' 're've'm'll'd",
        "Digits: 0 12 345 6789 3.14159 1,000,000 -42 +7 1e10 ٣٤٥ ۶۷۸ ४५६ ²³ ½ Ⅻ 〇 ①②",
        "Combining: e\u0301 a\u0308\u0304 \u0301alone n\u0303o Z\u0351\u0352\u0353",
        "CJK: 日本語のテキストです。中文文本，한국어 텍스트。",
        "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇩🇪 ❤️ 1️⃣ 🫠 ",
        "Scripts: Ελληνικά кириллица עברית العربية हिन्दी ไทย ქართული አማርኛ ᚠᚢᚦ 𐌰𐌱 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "Oniguruma-unknown letters: ab\u0558cd \U00010940\U00010941 x\U00010945y 1\U00010950 \U0001e6c0!",
        "Controls and format chars: a\x00b\x01c\x7fd\u200be\u200df\u2060g\ufeffh\ufffei\U0010ffffj\ue000k",
        "Punctuation runs: !!! ??? ... --- *** ((( ))) \"quoted\" «guillemets» „low” ‘single’ …",
        "URLs: https://example.com/path?q=1&r=two#frag user@example.org C:\\Windows\\path",
        "word" * 3000,
        " ".join(["repeat"] * 5000),
        "x" + " " * 3000 + "y",
        "mixed\u3000ideographic\u3000space and\xa0nbsp",
    ]
    # A sample of every plane (every 251st code point, surrogates excluded), 64 per line.
    sample = [chr(c) for c in range(0, 0x110000, 251) if not 0xD800 <= c < 0xE000 and c not in (10, 13)]
    lines += ["".join(sample[i:i + 64]) for i in range(0, len(sample), 64)]
    lines += [" ".join(sample[i:i + 64]) for i in range(0, len(sample), 640)]
    endings = ["\n", "\r\n", "\r"]
    text = "".join(line + endings[i % 3] for i, line in enumerate(lines))
    return text + "last line without a line end"


@pytest.fixture(scope="session")
def edge_case_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("edge") / "edge-cases.txt"
    path.write_bytes(edge_case_text().encode("utf-8"))
    return path
