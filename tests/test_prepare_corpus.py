"""scripts/prepare_corpus.py against the two-step fairseq pipeline (fairseq's encoder, then
fairseq-preprocess through scripts/preprocess.sh): identical dict.txt, .bin and .idx bytes; its
fairseq-free dictionary and dataset writers against fairseq's own."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fairseq_ext.corpus.indexed import IndexedDatasetWriter, token_dtype
from fairseq_ext.errors import UserInputError
from fairseq_ext.tokenizer.base import vocab_to_dictionary
from fairseq_ext.tokenizer.dictionary import read_dictionary, read_dictionary_entries, write_dictionary
from tests.conftest import REPO, command
from tests.corpus_fixtures import edge_case_text, run_fairseq_encoder, run_script

prepare_corpus = command("prepare_corpus")

SPLITS = ("train", "valid", "test")


def fairseq_pipeline(raw_dir, bpe_dir, destdir, gpt2_bpe_dir, dict_path, keep_empty=True,
                     max_unk=None):
    """The reference route: multiprocessing_bpe_encoder.py per split, then fairseq-preprocess (max_unk:
    preprocess.sh's --max-unk, its bound on the <unk> share)."""
    bpe_dir.mkdir()
    for split in SPLITS:
        if (raw_dir / f"data.{split}.raw").exists():
            run_fairseq_encoder(["--encoder-json", gpt2_bpe_dir / "encoder.json", "--vocab-bpe",
                                 gpt2_bpe_dir / "vocab.bpe", "--inputs", raw_dir / f"data.{split}.raw",
                                 "--outputs", bpe_dir / f"data.{split}.bpe", "--workers", "2"]
                                + (["--keep-empty"] if keep_empty else []))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    bound = [] if max_unk is None else ["--max-unk", str(max_unk)]
    subprocess.run(["bash", "scripts/preprocess.sh", str(bpe_dir), str(destdir), str(dict_path), *bound],
                   check=True, capture_output=True, env={**os.environ, "WORKERS": "2", "PATH": path})


def assert_same_data_bin(ours, reference, splits):
    for name in ["dict.txt"] + [f"{split}.{ext}" for split in splits for ext in ("bin", "idx")]:
        assert (ours / name).read_bytes() == (reference / name).read_bytes(), name


def test_wiki_data_bin_is_byte_identical_to_fairseq(wiki_raw_dir, wiki_data_bin, gpt2_bpe_dir, tmp_path):
    fairseq_pipeline(wiki_raw_dir, tmp_path / "bpe", tmp_path / "reference", gpt2_bpe_dir,
                     gpt2_bpe_dir / "dict.txt")
    assert_same_data_bin(wiki_data_bin, tmp_path / "reference", SPLITS)


def test_wiki_data_bin_keeps_documents_for_complete_doc(wiki_data_bin):
    """20 articles: the train split's 17 documents are separated by 16 eos-only sequences, and
    fairseq's complete_doc blocks never cross them."""
    from fairseq.data import Dictionary, TokenBlockDataset, data_utils

    dictionary = Dictionary.load(str(wiki_data_bin / "dict.txt"))
    train = data_utils.load_indexed_dataset(str(wiki_data_bin / "train"), dictionary)
    sizes = np.asarray(train.sizes)
    assert (sizes == 1).sum() == 16 and sizes.min() == 1 and len(train) > 400
    assert all(int(train[i][-1]) == dictionary.eos() for i in range(len(train)))
    blocks = TokenBlockDataset(train, train.sizes, block_size=510, pad=dictionary.pad(),
                               eos=dictionary.eos(), break_mode="complete_doc")
    assert len(blocks) >= 17


def test_unknown_tokens_and_dropped_empty_lines_match_fairseq(tmp_path, gpt2_bpe_dir):
    """A dictionary lacking some GPT-2 ids (they become <unk>, counted) and the edge-case text, empty
    lines dropped (--no-keep-empty): still fairseq's bytes."""
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    lines = edge_case_text().splitlines()
    (raw_dir / "data.train.raw").write_text(edge_case_text(), encoding="utf-8")
    (raw_dir / "data.valid.raw").write_text("\n".join(lines[:20]) + "\n\n\n", encoding="utf-8")
    dict_lines = (gpt2_bpe_dir / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    small_dict = tmp_path / "small-dict.txt"
    small_dict.write_text("".join(dict_lines[:3000]), encoding="utf-8")
    fairseq_pipeline(raw_dir, tmp_path / "bpe", tmp_path / "reference", gpt2_bpe_dir, small_dict,
                     keep_empty=False, max_unk=1)  # many <unk>, on purpose
    done = run_script("prepare_corpus.py", "--raw-dir", raw_dir, "--gpt2-bpe", gpt2_bpe_dir,
                      "--srcdict", small_dict, "--destdir", tmp_path / "ours", "--workers", "2",
                      "--no-keep-empty", "--quiet", "--max-unk", "1")  # many <unk>, on purpose
    assert_same_data_bin(tmp_path / "ours", tmp_path / "reference", ("train", "valid"))
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(str(small_dict))
    for split in ("train", "valid"):
        data = data_utils.load_indexed_dataset(str(tmp_path / "reference" / split), dictionary)
        unk = sum(int((data[i] == dictionary.unk()).sum()) for i in range(len(data)))
        reported = [line for line in done.stderr.splitlines() if line.startswith(f"{split}:")]
        assert unk > 10 and f" {unk} (" in reported[0] and "empty lines dropped" in reported[0]


def test_bad_input_errors(tmp_path, gpt2_bpe_dir):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "data.train.raw").write_bytes(b"ok\n")
    cases = {
        ("--raw-dir", tmp_path / "nowhere"): "raw directory not found",
        ("--raw-dir", tmp_path / "raw"): "missing data.valid.raw",
        ("--raw-dir", tmp_path / "raw", "--srcdict", tmp_path / "no-dict.txt"): "dictionary not found",
        ("--raw-dir", tmp_path / "raw", "--gpt2-bpe", tmp_path): "no tokenizer files",
    }
    for args, message in cases.items():
        with pytest.raises(UserInputError, match=message) as error:
            prepare_corpus.main(["--gpt2-bpe", str(gpt2_bpe_dir), "--destdir", str(tmp_path / "out"),
                                 *map(str, args)])
        assert "\n" not in str(error.value)


def test_dataset_writer_matches_fairseq_builder_for_every_dtype(tmp_path):
    """Our numpy writer against fairseq's MMapIndexedDatasetBuilder (as fairseq-preprocess makes it): same
    .bin/.idx bytes for each dictionary size's dtype, sequences given in uneven blocks (empty ones too)."""
    import torch
    from fairseq.data import indexed_dataset

    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, size=300)
    sizes[[5, 6, 299]] = 0  # fairseq stores empty sequences too
    cuts = [0, 0, 1, 57, 57, 200, 300]  # blocks of sequences: empty, one, many
    for vocab_size in (None, 50, 65499, 65500, 70000, 2**32):
        dtype = token_dtype(vocab_size)
        assert dtype == indexed_dataset.best_fitting_int_dtype(vocab_size)
        high = min(vocab_size or 2**32, 2**31)
        tokens = rng.integers(0, high, size=int(sizes.sum()))
        reference = str(tmp_path / f"fairseq-{vocab_size}")
        builder = indexed_dataset.make_builder(f"{reference}.bin", impl="mmap", vocab_size=vocab_size)
        for sequence in np.split(tokens, np.cumsum(sizes)[:-1]):
            builder.add_item(torch.from_numpy(sequence))
        builder.finalize(f"{reference}.idx")
        ours = str(tmp_path / f"ours-{vocab_size}")
        writer = IndexedDatasetWriter(ours, dtype)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        for start, end in zip(cuts, cuts[1:]):
            writer.add_block(tokens[bounds[start]:bounds[end]].astype(dtype), sizes[start:end])
        writer.finalize()
        for ext in (".bin", ".idx"):
            assert Path(ours + ext).read_bytes() == Path(reference + ext).read_bytes(), (vocab_size, ext)


def test_dictionary_read_and_saved_as_fairseq_does(tmp_path):
    """dict.txt lines fairseq accepts in odd forms (padded or signed counts, a symbol ending in a space,
    chars that str.splitlines but not text mode takes for line ends, #fairseq:overwrite duplicates):
    the same symbols, indices and saved dict.txt as Dictionary.load + save; its errors are ours too."""
    from fairseq.data import Dictionary

    source = tmp_path / "dict.txt"
    source.write_bytes("13 1000\n198 007\nhello +5\nspace  9\nform\x0cfeed\u2028sep\x85 2\n"
                       "13 4 #fairseq:overwrite\n<unk> 1 #fairseq:overwrite\nlast -3\r\n".encode("utf-8"))
    reference = Dictionary.load(str(source))
    reference.save(str(tmp_path / "fairseq.txt"))
    entries = read_dictionary_entries(source)
    write_dictionary(entries, tmp_path / "ours.txt")
    assert (tmp_path / "ours.txt").read_bytes() == (tmp_path / "fairseq.txt").read_bytes()
    symbols = read_dictionary(source)
    assert symbols == reference.symbols
    vocab = ["13", "198", "hello", "space ", "missing", "<unk>", "last"]
    assert vocab_to_dictionary(vocab, symbols).tolist() == [reference.index(word) for word in vocab]
    for bad in ("word\n", "word x\n", "13 1\n13 2\n", "<s> 4\n"):
        (tmp_path / "bad.txt").write_text(bad, encoding="utf-8")
        with pytest.raises((ValueError, RuntimeError)):
            Dictionary.load(str(tmp_path / "bad.txt"))
        with pytest.raises(UserInputError, match="line "):
            read_dictionary_entries(tmp_path / "bad.txt")


def test_prepare_corpus_imports_neither_torch_nor_fairseq(tmp_path, gpt2_bpe_dir):
    """A whole run (dictionary, 2 workers, dataset writer) as `python -X importtime` shows it."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.train.raw").write_text(edge_case_text(), encoding="utf-8")
    (raw / "data.valid.raw").write_text("One line.\n\nAnother one.\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "scripts" / "prepare_corpus.py"),
                           "--raw-dir", str(raw), "--gpt2-bpe", str(gpt2_bpe_dir), "--destdir",
                           str(tmp_path / "out"), "--workers", "2", "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:")]
    assert "fairseq_ext.corpus.indexed" in modules and (tmp_path / "out" / "train.bin").stat().st_size > 0
    assert not [module for module in modules if module.split(".")[0] in ("torch", "fairseq")]
