"""SentencePiece as the second tokenizer: scripts/train_spm.py (model + XLM-R-layout dict.txt) and the
tokenizer's ids and offsets against the sentencepiece library's own encoding + fairseq's dictionary."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece
from fairseq.data import Dictionary

from fairseq_ext.tokenizer import load_tokenizer, read_dictionary
from fairseq_ext.tokenizer.spm import METASPACE, SentencePiece
from tests.conftest import REPO, command
from tests.spm_fixtures import SPM_VOCAB_SIZE

prepare_corpus = command("prepare_corpus")
bpe_encode = command("bpe_encode")


def test_train_spm_writes_an_xlmr_layout_directory(spm_dir, cmrc_corpus):
    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_dir / "sentencepiece.bpe.model"))
    assert processor.get_piece_size() == SPM_VOCAB_SIZE
    assert [processor.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    dictionary = Dictionary.load(str(spm_dir / "dict.txt"))
    # XLM-R's layout: fairseq's 4 specials, then the pieces in model order (fairseq index = piece id + 1)
    assert len(dictionary) == SPM_VOCAB_SIZE + 1
    assert all(dictionary.index(processor.id_to_piece(i)) == i + 1 for i in range(3, SPM_VOCAB_SIZE))
    # counts: each piece's occurrences in the training text (here: every non-blank line)
    lines = [line.strip() for line in cmrc_corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts = [0] * SPM_VOCAB_SIZE
    for ids in processor.encode(lines):
        for index in ids:
            counts[index] += 1
    assert [dictionary.count[i + 1] for i in range(3, SPM_VOCAB_SIZE)] == counts[3:]
    assert read_dictionary(spm_dir / "dict.txt") == dictionary.symbols


def test_train_spm_refuses_to_overwrite_and_reports_bad_sizes(spm_dir, cmrc_corpus, tmp_path):
    train_spm = [sys.executable, str(REPO / "scripts" / "train_spm.py"), "--inputs", str(cmrc_corpus)]
    done = subprocess.run([*train_spm, "--out", str(spm_dir), "--vocab-size", "100"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "use it as --tokenizer" in done.stderr
    done = subprocess.run([*train_spm, "--out", str(tmp_path / "small"), "--vocab-size", "100", "--quiet"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 2 and "Vocabulary size is smaller than required_chars" in done.stderr


def test_ids_are_the_reference_pieces_looked_up_in_the_dictionary(spm_dir, cmrc_trial):
    tokenizer = load_tokenizer(spm_dir)
    assert isinstance(tokenizer, SentencePiece)
    dictionary = Dictionary.load(str(spm_dir / "dict.txt"))
    indexed = tokenizer.to_dictionary(dictionary.symbols, dictionary.unk())
    data = json.loads(cmrc_trial.read_text(encoding="utf-8"))
    texts = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    texts += [" 前后 有空格  ", "全角ＡＢＣ１２３，半角abc123", "生僻字𠀀𠀁和\u3000全角空格",
              "tab\tand\u00a0nbsp", ""]
    unknown = 0
    for text in texts:
        reference = [dictionary.index(piece) for piece in tokenizer.processor.encode(text, out_type=str)]
        ids, offsets = indexed.encode_with_offsets(text)
        assert ids == reference, text
        unknown += reference.count(dictionary.unk())
        pieces = tokenizer.processor.encode(text, out_type=str)
        for piece, (start, end) in zip(pieces, offsets):
            assert 0 <= start <= end <= len(text)
            if piece == METASPACE:  # a lone "▁": empty, at the next piece
                assert start == end
            elif text[start:end] == text[start:end].strip() and piece.lstrip(METASPACE).isalnum():
                # plain pieces cover their characters (normalization may change width: ＡＢＣ -> ABC)
                assert len(text[start:end]) == len(piece.lstrip(METASPACE))
    assert unknown > 0  # the rare characters above are <unk> on both sides


def spm_reference(raw_dir, spm_dir, pieces_dir, destdir):
    """The two-step reference: SentencePieceProcessor.encode(line, out_type=str) joined by spaces (what
    spm_encode --output_format=piece writes) per line, then fairseq-preprocess --only-source --srcdict."""
    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_dir / "sentencepiece.bpe.model"))
    pieces_dir.mkdir()
    for split in ("train", "valid", "test"):
        raw = raw_dir / f"data.{split}.raw"
        if raw.exists():
            with open(raw, encoding="utf-8") as lines, \
                    open(pieces_dir / f"data.{split}.bpe", "w", encoding="utf-8") as out:
                for line in lines:
                    out.write(" ".join(processor.encode(line.rstrip("\n"), out_type=str)) + "\n")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "WORKERS": "2", "PATH": path}
    subprocess.run(["bash", "scripts/preprocess.sh", pieces_dir, destdir, spm_dir / "dict.txt"], check=True,
                   capture_output=True, cwd=REPO, env=env)


def test_spm_data_bin_is_byte_identical_to_spm_encode_and_fairseq_preprocess(
        cmrc_raw_dir, spm_dir, spm_data_bin, tmp_path):
    spm_reference(cmrc_raw_dir, spm_dir, tmp_path / "pieces", tmp_path / "reference")
    names = [f"{split}.{ext}" for split in ("train", "valid", "test") for ext in ("bin", "idx")]
    for name in ["dict.txt", *names]:
        assert (spm_data_bin / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    made_by = json.loads((spm_data_bin / "tokenizer.json").read_text())
    assert made_by["kind"] == "sentencepiece"


def test_spm_edge_cases_and_bpe_encode_pieces(spm_dir, edge_case_file, tmp_path):
    """Odd whitespace, line ends, controls, every plane (mostly <unk> here) and very long lines."""
    raw = tmp_path / "raw"
    raw.mkdir()
    text = edge_case_file.read_bytes()
    (raw / "data.train.raw").write_bytes(text)
    (raw / "data.valid.raw").write_bytes("中文一行\n\n另一行 with English\n".encode())
    prepare_corpus.main(["--raw-dir", str(raw), "--tokenizer", str(spm_dir), "--destdir",
                         str(tmp_path / "ours"), "--workers", "2", "--quiet"])
    spm_reference(raw, spm_dir, tmp_path / "pieces", tmp_path / "reference")
    for name in ("train.bin", "train.idx", "valid.bin", "valid.idx"):
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    # bpe_encode.py --tokenizer writes the pieces themselves (with --keep-empty, line for line)
    bpe_encode.main(["--tokenizer", str(spm_dir), "--inputs", str(raw / "data.valid.raw"), "--outputs",
                     str(tmp_path / "valid.pieces"), "--keep-empty", "--quiet"])
    assert (tmp_path / "valid.pieces").read_text(encoding="utf-8") == \
        (tmp_path / "pieces" / "data.valid.bpe").read_text(encoding="utf-8")


def test_a_data_dir_refuses_another_tokenizer(spm_dir, gpt2_bpe_dir, spm_data_bin):
    from fairseq_ext.errors import UserInputError
    from fairseq_ext.tokenizer import check_record

    check_record(spm_data_bin, spm_dir, "data")  # the one that made it
    with pytest.raises(UserInputError, match="was made with the sentencepiece tokenizer .* not with .*gpt2"):
        check_record(spm_data_bin, gpt2_bpe_dir, "data")
