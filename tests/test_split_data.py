"""scripts/split_data.py: document-level, seeded, every document kept exactly once, byte for byte."""

import subprocess
import sys
from collections import Counter

import pytest

from fairseq_ext.corpus.split import assign_splits
from fairseq_ext.errors import UserInputError
from tests.conftest import command, shared_path

split_data = command("split_data")


def documents_of(text: str) -> list[str]:
    """The reference definition: runs of non-blank lines (universal newlines), as tuples of lines."""
    documents, current = [], []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            documents.append("\n".join(current))
            current = []
    return documents + (["\n".join(current)] if current else [])


def split(tmp_path, capsys, *args, name="out"):
    """Runs split_data.py's main in this process; returns {split: text} and what it printed on stderr."""
    outdir = tmp_path / name
    split_data.main(["--outdir", str(outdir), "--quiet", *map(str, args)])
    texts = {path.name.split(".")[1]: path.read_bytes().decode("utf-8") for path in outdir.glob("data.*.raw")}
    return texts, capsys.readouterr().err


def test_documents_preserved_exactly_once(tmp_path, capsys):
    """Wiki articles plus a file with \\r\\n and lone \\r endings, whitespace-only separators, several
    blank lines in a row, no final line end: the union of the splits is the input's multiset of
    documents, each intact, separated by single blank lines."""
    wiki = shared_path("data", "wiki", "wiki-paragraphs.txt")
    odd = tmp_path / "inputs" / "odd.txt"
    odd.parent.mkdir()
    odd.write_bytes("doc one line 1\r\ndoc one line 2\r\n \t \r\n\r\n\r\ndoc two\rstill two\r\r"
                    "  indented doc three \u2028 inside\n\x0c\nlast doc, no line end".encode("utf-8"))
    outputs, log = split(tmp_path, capsys, "--inputs", wiki, odd.parent, "--valid-docs", 3, "--test-docs", 2)
    expected = documents_of(wiki.read_text(encoding="utf-8")) + documents_of(odd.read_text(encoding="utf-8"))
    assert len(expected) == 24
    found = [doc for text in outputs.values() for doc in text.rstrip("\n").split("\n\n")]
    assert Counter(found) == Counter(expected)
    assert all(text.endswith("\n") and "\n\n\n" not in text and "\r" not in text for text in outputs.values())
    assert [len(outputs[s].split("\n\n")) for s in ("train", "valid", "test")] == [19, 3, 2]
    assert "train: 19 documents" in log and "test: 2 documents" in log


def test_seeded_and_deterministic(tmp_path, capsys):
    wiki = shared_path("data", "wiki", "wiki-paragraphs.txt")
    first, _ = split(tmp_path, capsys, "--inputs", wiki, "--seed", 3, "--valid-docs", 4, name="a")
    again, _ = split(tmp_path, capsys, "--inputs", wiki, "--seed", 3, "--valid-docs", 4, name="b")
    other, _ = split(tmp_path, capsys, "--inputs", wiki, "--seed", 4, "--valid-docs", 4, name="c")
    assert first == again and first["valid"] != other["valid"]
    assert "test" not in first  # no test documents asked for: no test file


def test_ratios_respected(tmp_path, capsys):
    """KJV verses in blank-line-separated groups of 10 (3,111 documents) from a glob pattern."""
    lines = shared_path("data", "kjv", "kjv.txt").read_text(encoding="utf-8").splitlines()
    source = tmp_path / "kjv-docs.txt"
    source.write_text("\n\n".join("\n".join(lines[i:i + 10]) for i in range(0, len(lines), 10)) + "\n",
                      encoding="utf-8")
    outputs, _ = split(tmp_path, capsys, "--inputs", tmp_path / "kjv-*.txt", "--valid-ratio", 0.05,
                       "--test-ratio", 0.02)
    counts = {name: len(text.split("\n\n")) for name, text in outputs.items()}
    assert counts == {"valid": round(3111 * 0.05), "test": round(3111 * 0.02),
                      "train": 3111 - round(3111 * 0.05) - round(3111 * 0.02)}


def test_assignment_is_exact_and_uniform():
    """Exact counts for every seed; each position equally likely to be valid (selection sampling)."""
    hits = Counter()
    for seed in range(2000):
        splits = list(assign_splits(10, 2, 1, seed))
        assert Counter(splits) == {"train": 7, "valid": 2, "test": 1}
        hits.update(i for i, name in enumerate(splits) if name == "valid")
    assert all(330 < hits[i] < 470 for i in range(10))  # expected 400 each


def test_bad_input_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good\n\nstill good\r\nbad \xc3\x28 bytes\n")
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"\n \n\t\n")
    few = tmp_path / "few.txt"
    few.write_bytes(b"one\n\ntwo\n")
    cases = {
        ("--inputs", bad): f"{bad}: line 4: invalid UTF-8",
        ("--inputs", blank): "no documents",
        ("--inputs", tmp_path / "missing.txt"): "input not found",
        ("--inputs", tmp_path / "empty-dir-*"): "input not found",
        ("--inputs", few, "--valid-docs", 1, "--test-docs", 1): "only 2 documents",
        ("--inputs", few, "--valid-docs", 1, "--valid-ratio", 0.5): "either",
    }
    for args, message in cases.items():
        with pytest.raises(UserInputError, match=message) as error:
            split_data.main(["--outdir", str(tmp_path / "o"), "--quiet", *map(str, args)])
        assert "\n" not in str(error.value)


def test_cli_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\n")
    done = subprocess.run([sys.executable, "scripts/split_data.py", "--outdir", str(tmp_path / "o"),
                           "--quiet", "--inputs", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    message = f"{bad}: line 2: invalid UTF-8 (invalid start byte, byte 0xff){split_data.ERRORS_HINT}"
    assert done.stderr == f"split_data.py: error: {message}\n"


def test_errors_replace(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good\n\nbad \xff\xfe bytes\n\nthird\n")
    outputs, log = split(tmp_path, capsys, "--inputs", bad, "--valid-docs", 1, "--errors", "replace")
    assert "".join(outputs.values()).count("\ufffd") == 2 and "replaced 2 invalid UTF-8" in log
