"""SentencePiece as the second tokenizer: scripts/train_spm.py (model + XLM-R-layout dict.txt) and the
tokenizer's ids and offsets against the sentencepiece library's own encoding + fairseq's dictionary."""

import json
import subprocess
import sys

import sentencepiece
from fairseq.data import Dictionary

from fairseq_ext.tokenizer import load_tokenizer, read_dictionary
from fairseq_ext.tokenizer.spm import METASPACE, SentencePiece
from tests.conftest import REPO
from tests.spm_fixtures import SPM_VOCAB_SIZE


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
