"""convert/hf_to_fairseq.py: tiny Hugging Face RoBERTas with random weights (stand-ins for hub models, with a
nonzero token-type row) imported into fairseq, compared with fairseq's own hub interface, trained further
with scripts/pretrain.sh, exported back; and every refusal as one line with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from fairseq.data import data_utils
from fairseq.models.roberta import RobertaModel as FairseqRobertaHub
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaModel,
    RobertaTokenizerFast,
)

from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint
from fairseq_ext.commands import fairseq_to_hf, hf_to_fairseq
from fairseq_ext.errors import UserInputError
from fairseq_ext.export.from_hf import OUTPUT_FILES
from fairseq_ext.outputs import MARKER
from fairseq_ext.tokenizer import ENV_VAR
from tests.conftest import REPO
from tests.corpus_fixtures import run_script
from tests.pretrain_fixtures import run_pretrain, training_records
from tests.test_convert import MAX_LENGTH, truncated, wiki_paragraphs

TOLERANCE = 1e-4
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
            max_position_embeddings=130, type_vocab_size=1, layer_norm_eps=1e-5)  # configs/pretraining/tiny
CONTINUED_UPDATES = 6


def roberta_tokenizer(gpt2_bpe_dir: Path) -> RobertaTokenizerFast:
    """roberta-base's tokenizer, made from the official files as transformers' conversion made it: the
    fairseq dictionary's GPT-2 tokens in index order, <mask> last."""
    encoder = json.loads((gpt2_bpe_dir / "encoder.json").read_text(encoding="utf-8"))
    gpt2_tokens = {index: token for token, index in encoder.items()}
    symbols = [line.split()[0] for line in (gpt2_bpe_dir / "dict.txt").read_text().splitlines()]
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + [gpt2_tokens.get(int(s), s) if s.isdigit() else s
                                                  for s in symbols] + ["<mask>"]
    lines = (gpt2_bpe_dir / "vocab.bpe").read_text().splitlines()[1:]
    merges = [tuple(line.split()) for line in lines if line]
    return RobertaTokenizerFast(vocab={token: index for index, token in enumerate(tokens)}, merges=merges)


def save_random_model(model_class, out: Path, gpt2_bpe_dir: Path, seed: int = 0, **config) -> Path:
    """A random-weight tiny model with roberta-base's tokenizer, saved as save_pretrained saves it; the
    token-type row is made large so that forgetting to fold it would show."""
    torch.manual_seed(seed)
    tokenizer = roberta_tokenizer(gpt2_bpe_dir)
    model = model_class(RobertaConfig(vocab_size=len(tokenizer), **{**TINY, **config}))
    with torch.no_grad():
        model.base_model.embeddings.token_type_embeddings.weight.normal_(0, 0.5)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


@dataclass
class Import:
    source: Path
    out: Path
    printed: str


def run_import(source, out: Path, gpt2_bpe_dir: Path, *extra: str) -> Import:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = hf_to_fairseq.main(["--model", str(source), "--out", str(out), "--gpt2-bpe",
                                     str(gpt2_bpe_dir), *extra])
    assert status == 0, printed.getvalue()
    return Import(Path(source), out, printed.getvalue())


@pytest.fixture(scope="module")
def random_mlm(gpt2_bpe_dir, tmp_path_factory) -> Path:
    return save_random_model(RobertaForMaskedLM, tmp_path_factory.mktemp("hf-random") / "mlm", gpt2_bpe_dir)


@pytest.fixture(scope="module")
def imported_mlm(random_mlm, gpt2_bpe_dir, tmp_path_factory) -> Import:
    return run_import(random_mlm, tmp_path_factory.mktemp("fairseq-import") / "roberta", gpt2_bpe_dir)


def hub_interface(directory: Path):
    """What the issue promises users: fairseq's plain from_pretrained on the directory."""
    return FairseqRobertaHub.from_pretrained(str(directory), checkpoint_file="model.pt").eval()


def test_import_equals_the_hf_model(imported_mlm, random_mlm, gpt2_bpe_dir):
    assert sorted(set(os.listdir(imported_mlm.out)) - {MARKER}) == sorted(OUTPUT_FILES)
    assert "verification: 6 sequences" in imported_mlm.printed and "-> OK" in imported_mlm.printed
    assert (imported_mlm.out / "dict.txt").read_text().split("\n")[0] == \
        (gpt2_bpe_dir / "dict.txt").read_text().split("\n")[0].split()[0] + " 0"  # the official dictionary

    hub = hub_interface(imported_mlm.out)
    tokenizer = AutoTokenizer.from_pretrained(str(random_mlm))
    model = AutoModelForMaskedLM.from_pretrained(str(random_mlm)).eval()
    texts = wiki_paragraphs()[:12]
    expected = [truncated(hub.encode(text).tolist()) for text in texts]  # fairseq's GPT-2 encoder
    encoded = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    real = encoded["attention_mask"].bool()
    assert [row[mask].tolist() for row, mask in zip(encoded["input_ids"], real)] == expected
    batch = data_utils.collate_tokens([torch.tensor(ids) for ids in expected], pad_idx=1)
    with torch.no_grad():
        difference = float((hub.model(batch)[0][real] - model(**encoded).logits[real]).abs().max())
        model.roberta.embeddings.token_type_embeddings.weight.zero_()
        unfolded = float((hub.model(batch)[0][real] - model(**encoded).logits[real]).abs().max())
    print(f"\nimported random RoBERTa, {len(texts)} paragraphs, {int(real.sum())} tokens: max |logit "
          f"difference| {difference:.2e} (without the token-type row: {unfolded:.2e})")
    assert difference <= TOLERANCE < unfolded


def test_imports_from_the_hf_directory_alone(imported_mlm, random_mlm, tmp_path, monkeypatch):
    """A model fresh from the Hub, no GPT-2 files at hand (no --gpt2-bpe, $GPT2_BPE_DIR or gpt2_bpe/): its
    own vocab.json/merges.txt give GPT-2's files, the same bytes and the same model as with them."""
    import fairseq_ext.tokenizer

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(fairseq_ext.tokenizer, "REPO_DIR", tmp_path / "no-gpt2-bpe")
    out = tmp_path / "roberta"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert hf_to_fairseq.main(["--model", str(random_mlm), "--out", str(out)]) == 0
    assert f"tokenizer: GPT-2 BPE files rebuilt from the merges of {random_mlm}" in printed.getvalue()
    assert "-> OK" in printed.getvalue()  # verified against the HF model
    for name in ("dict.txt", "encoder.json", "vocab.bpe"):
        assert (out / name).read_bytes() == (imported_mlm.out / name).read_bytes(), name
    ours, theirs = (load_checkpoint(path / "model.pt")["model"] for path in (out, imported_mlm.out))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_continues_masked_lm_training(imported_mlm, wiki_raw_dir, tmp_path):
    """Acceptance: a corpus binarized with OUT/dict.txt (OUT as the tokenizer directory of our corpus tool),
    then scripts/pretrain.sh --restore OUT/model.pt, starting from the imported weights."""
    data_bin = tmp_path / "data-bin"
    run_script("prepare_corpus.py", "--raw-dir", wiki_raw_dir, "--gpt2-bpe", imported_mlm.out,
               "--destdir", data_bin, "--workers", "1", "--quiet")
    assert (data_bin / "dict.txt").read_text() == (imported_mlm.out / "dict.txt").read_text()
    save_dir = tmp_path / "continued"
    done = run_pretrain("--config", "tiny", "--data", data_bin, "--save-dir", save_dir, "--restore",
                        imported_mlm.out / "model.pt", f"optimization.max_update={CONTINUED_UPDATES}",
                        "dataset.validate_interval_updates=0", "common.log_interval=1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"starting from {imported_mlm.out / 'model.pt'} (roberta, 50265 embedding rows, update 0 of " \
           f"{CONTINUED_UPDATES})" in done.stderr
    info = checkpoint_info(load_checkpoint(save_dir / "checkpoint_last.pt"))
    assert info.num_updates == CONTINUED_UPDATES and info.embedding_rows == 50265
    losses = [float(record["loss"]) for record in training_records(save_dir)]
    print(f"\ncontinued pretraining of the imported model: losses {losses}")
    assert len(losses) == CONTINUED_UPDATES
    # a random model predicts about uniformly over 50265 symbols: log2(50265) = 15.6 bits
    assert 14 < losses[0] < 17


def test_hf_fairseq_hf_round_trip_gives_the_same_logits(imported_mlm, random_mlm, tmp_path):
    out = tmp_path / "hf"
    with contextlib.redirect_stdout(io.StringIO()):
        assert fairseq_to_hf.main(["--checkpoint", str(imported_mlm.out / "model.pt"), "--gpt2-bpe",
                                   str(imported_mlm.out), "--out", str(out)]) == 0
    original, back = (AutoModelForMaskedLM.from_pretrained(str(path)).eval() for path in (random_mlm, out))
    tokenizers = [AutoTokenizer.from_pretrained(str(path)) for path in (random_mlm, out)]
    assert tokenizers[0].get_vocab() == tokenizers[1].get_vocab()
    texts = wiki_paragraphs()[-8:]
    encoded = [tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
               for tokenizer in tokenizers]
    assert torch.equal(encoded[0]["input_ids"], encoded[1]["input_ids"])
    with torch.no_grad():
        difference = float((original(**encoded[0]).logits - back(**encoded[1]).logits).abs().max())
    print(f"\nHF -> fairseq -> HF: max |logit difference| {difference:.2e}")
    assert difference <= TOLERANCE
    card = (out / "README.md").read_text()
    assert f"converted from Hugging Face`: `{random_mlm}`" in card


def test_roberta_model_gets_a_fresh_masked_lm_head(gpt2_bpe_dir, tmp_path):
    """RobertaModel (with its pooler, as save_pretrained writes it): the encoder's features are compared,
    the pooler is reported, fairseq's masked-LM head is new (and the same on every run)."""
    source = save_random_model(RobertaModel, tmp_path / "encoder", gpt2_bpe_dir, seed=1)
    first = run_import(source, tmp_path / "first", gpt2_bpe_dir)
    assert "max |feature difference|" in first.printed and "-> OK" in first.printed
    assert "not converted: pooler" in first.printed
    assert "masked-LM head: freshly initialised" in first.printed
    second = run_import(source, tmp_path / "second", gpt2_bpe_dir)
    a, b = (load_checkpoint(result.out / "model.pt")["model"] for result in (first, second))
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert hub_interface(first.out).fill_mask("The capital of France is <mask>.", topk=1)


def test_hub_id_from_the_local_cache_offline(random_mlm, gpt2_bpe_dir, tmp_path):
    """A hub id resolves in the Hugging Face cache (laid out as huggingface_hub downloads it) with
    HF_HUB_OFFLINE=1; a missing one is a one-line error."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--example--tiny-roberta" / "snapshots" / ("0" * 40)
    shutil.copytree(random_mlm, snapshot)
    (cache / "models--example--tiny-roberta" / "refs").mkdir()
    (cache / "models--example--tiny-roberta" / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}

    def convert(model_id: str, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "convert" / "hf_to_fairseq.py"), "--model",
                               model_id, "--out", str(out), "--gpt2-bpe", str(gpt2_bpe_dir)],
                              capture_output=True, text=True, env=env, timeout=600)

    done = convert("example/tiny-roberta", tmp_path / "from-cache")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"source: {snapshot}" in done.stdout
    missing = convert("example/not-downloaded", tmp_path / "missing")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("hf_to_fairseq.py: error: example/not-downloaded: no such directory, "
                                     "and not found in the local Hugging Face cache (HF_HUB_OFFLINE is set)")
    assert not (tmp_path / "missing").exists()


def edited_copy(source: Path, dest: Path, **config) -> Path:
    """The model directory with config.json entries replaced (weights linked, not copied)."""
    dest.mkdir()
    for item in source.iterdir():
        (dest / item.name).symlink_to(item)
    (dest / "config.json").unlink()
    (dest / "config.json").write_text(json.dumps({**json.loads((source / "config.json").read_text()),
                                                  **config}))
    return dest


@pytest.mark.parametrize("case, message", [
    ("layer norm", r"layer_norm_eps 1e-12 \(fairseq's is 1e-05\)"),
    ("activation", r"activation 'silu'"),
    ("relative positions", r"position_embedding_type 'relative_key' \(fairseq has absolute positions only\)"),
    ("not RoBERTa", r"the model is a 'bert' model, not RoBERTa"),
    ("other merges", r"the tokenizer's BPE merges differ from .*vocab.bpe: it is not GPT-2's byte-level BPE"),
    ("rows beyond the tokenizer", r"the model has 50273 embedding rows but its tokenizer 50265 tokens"),
    ("existing output", r"exists and was not written by hf_to_fairseq \(it holds old-file\)"),
    ("missing directory", r"no such directory, and not found in the local Hugging Face cache"),
])
def test_refusals_are_one_line_and_write_nothing(case, message, random_mlm, gpt2_bpe_dir, tmp_path):
    source, bpe_dir, out = random_mlm, gpt2_bpe_dir, tmp_path / "out"
    if case == "layer norm":
        source = edited_copy(random_mlm, tmp_path / "model", layer_norm_eps=1e-12)
    elif case == "activation":
        source = edited_copy(random_mlm, tmp_path / "model", hidden_act="silu")
    elif case == "relative positions":
        source = edited_copy(random_mlm, tmp_path / "model", position_embedding_type="relative_key")
    elif case == "not RoBERTa":
        source = tmp_path / "bert"
        BertForMaskedLM(BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=128)).save_pretrained(str(source))
    elif case == "other merges":
        bpe_dir = tmp_path / "bpe"
        bpe_dir.mkdir()
        (bpe_dir / "encoder.json").symlink_to(gpt2_bpe_dir / "encoder.json")
        merges = (gpt2_bpe_dir / "vocab.bpe").read_text().splitlines()
        (bpe_dir / "vocab.bpe").write_text("\n".join(merges[:1] + merges[2:]) + "\n")  # one merge less
    elif case == "rows beyond the tokenizer":
        source = save_random_model(RobertaForMaskedLM, tmp_path / "padded", gpt2_bpe_dir)
        edited = RobertaForMaskedLM.from_pretrained(str(source))
        edited.resize_token_embeddings(50273)
        edited.save_pretrained(str(source))
    elif case == "existing output":
        out.mkdir()
        (out / "old-file").write_text("x")
    else:
        source = tmp_path / "no-such-model"
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UserInputError, match=message) as error:
        hf_to_fairseq.main(["--model", str(source), "--out", str(out), "--gpt2-bpe", str(bpe_dir)])
    assert "\n" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == before
    if case == "existing output":
        assert os.listdir(out) == ["old-file"]


def test_failed_verification_exits_1_and_writes_nothing(random_mlm, gpt2_bpe_dir, tmp_path, monkeypatch,
                                                        capsys):
    """The fold forgotten: verification catches it and nothing is written."""
    from fairseq_ext.export import from_hf, state_dict

    def without_token_types(hf_state, *args):
        return state_dict.fairseq_state_dict({key: value for key, value in hf_state.items()
                                              if "token_type" not in key}, *args)

    monkeypatch.setattr(from_hf, "fairseq_state_dict", without_token_types)
    status = hf_to_fairseq.main(["--model", str(random_mlm), "--out", str(tmp_path / "out"), "--gpt2-bpe",
                                 str(gpt2_bpe_dir)])
    error = capsys.readouterr().err
    assert status == 1 and "verification failed, nothing written" in error and "ids identical" in error
    assert float(error.split("max |logit difference| ")[1].split()[0]) > TOLERANCE
    assert os.listdir(tmp_path) == []
