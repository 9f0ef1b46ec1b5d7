"""convert/fairseq_to_hf.py: tiny masked-LM and span-QA checkpoints (the official GPT-2 dictionary and one
built from a corpus by fairseq-preprocess) exported, reloaded with from_pretrained and compared with fairseq
itself (its hub interface and checkpoint loader, its own GPT-2 encoder and Dictionary)."""

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
from fairseq import checkpoint_utils
from fairseq.data import Dictionary, data_utils
from fairseq.data.encoders.gpt2_bpe_utils import get_encoder
from fairseq.models.roberta import RobertaModel
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering, AutoTokenizer, pipeline

from fairseq_ext.checkpoints import load_checkpoint, model_config
from fairseq_ext.commands import fairseq_to_hf, hf_to_fairseq
from fairseq_ext.errors import UserInputError
from fairseq_ext.export import to_hf
from fairseq_ext.export.state_dict import NOT_WEIGHTS
from fairseq_ext.outputs import MARKER
from fairseq_ext.squad import load_squad
from fairseq_ext.tokenizer import Gpt2Bpe
from tests.conftest import REPO, shared_path
from tests.pretrain_fixtures import make_legacy_checkpoint
from tests.squad_fixtures import (
    TRAIN_ARTICLES,
    VALID_ARTICLES,
    prepare_squad,
    run_squad_script,
    squad_articles,
)

TOLERANCE = 1e-4
MAX_LENGTH = 128  # the tiny models' positions



def wiki_paragraphs() -> list[str]:
    lines = shared_path("data", "wiki", "wiki-paragraphs.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


def fairseq_reference_ids(encoder, dictionary: Dictionary, text: str) -> list[int]:
    """fairseq's own GPT-2 encoder and Dictionary.encode_line, as fairseq-preprocess / the hub encode."""
    line = " ".join(map(str, encoder.encode(text)))
    return dictionary.encode_line(line, append_eos=False, add_if_not_exist=False).tolist()


def truncated(ids: list[int]) -> list[int]:
    """``<s> ... </s>`` cut to MAX_LENGTH the way the HF tokenizer truncates (last token kept as </s>)."""
    return ids if len(ids) <= MAX_LENGTH else ids[:MAX_LENGTH - 1] + [2]


# --- a dictionary built from a corpus, and a tiny model pretrained on it ------------------------------

@pytest.fixture(scope="module")
def corpus_data_bin(gpt2_bpe_dir, venv_bin, tmp_path_factory) -> Path:
    """fairseq-preprocess without --srcdict on 80 wiki paragraphs: a 3k-symbol dictionary lacking most
    GPT-2 tokens."""
    work = tmp_path_factory.mktemp("corpus-dict")
    encoded = Gpt2Bpe.from_dir(gpt2_bpe_dir).encode_batch(wiki_paragraphs()[:80])
    (work / "train.bpe").write_text("".join(" ".join(map(str, ids)) + "\n" for ids in encoded))
    destdir = work / "data-bin"
    done = subprocess.run([str(venv_bin / "fairseq-preprocess"), "--only-source", "--trainpref",
                           str(work / "train.bpe"), "--destdir", str(destdir), "--workers", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return destdir


@pytest.fixture(scope="module")
def corpus_checkpoint(corpus_data_bin, venv_bin, tmp_path_factory) -> Path:
    """A tiny RoBERTa trained for a few updates on the corpus-dictionary data with the argparse CLI
    fairseq-train (its checkpoints keep the model config as a Namespace; scripts/pretrain.sh's
    fairseq-hydra-train, used for the official-dictionary model, writes a plain config)."""
    save_dir = tmp_path_factory.mktemp("corpus-pretrained")
    arguments = [
        str(corpus_data_bin), "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta",
        "--encoder-layers", "2", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
        "--encoder-attention-heads", "2", "--max-positions", str(MAX_LENGTH),
        "--tokens-per-sample", str(MAX_LENGTH), "--sample-break-mode", "none", "--batch-size", "8",
        "--max-update", "4", "--optimizer", "adam", "--lr", "0.005", "--save-dir", str(save_dir),
        "--no-epoch-checkpoints", "--disable-validation", "--cpu", "--seed", "1",
    ]
    done = subprocess.run([str(venv_bin / "fairseq-train"), *arguments], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return save_dir / "checkpoint_last.pt"


@dataclass
class Export:
    checkpoint: Path
    data_bin: Path  # the training data directory, with its dict.txt
    out: Path
    printed: str  # the converter's report


def run_export(checkpoint: Path, data_bin: Path, gpt2_bpe_dir: Path, out: Path, *extra: str) -> Export:
    """The converter's main, in-process (importing fairseq and transformers once per test session)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = fairseq_to_hf.main(["--checkpoint", str(checkpoint), "--gpt2-bpe", str(gpt2_bpe_dir),
                                     "--out", str(out), *extra])
    assert status == 0, printed.getvalue()
    return Export(checkpoint, data_bin, out, printed.getvalue())


@pytest.fixture(scope="module")
def official_mlm_export(tiny_pretrained_checkpoint, wiki_data_bin, gpt2_bpe_dir, tmp_path_factory) -> Export:
    return run_export(tiny_pretrained_checkpoint, wiki_data_bin, gpt2_bpe_dir,
                      tmp_path_factory.mktemp("hf-mlm-official") / "model")


@pytest.fixture(scope="module")
def corpus_mlm_export(corpus_checkpoint, corpus_data_bin, gpt2_bpe_dir, tmp_path_factory) -> Export:
    return run_export(corpus_checkpoint, corpus_data_bin, gpt2_bpe_dir,
                      tmp_path_factory.mktemp("hf-mlm-corpus") / "model")


@pytest.fixture(params=["official_mlm_export", "corpus_mlm_export"])
def mlm_export(request) -> Export:
    return request.getfixturevalue(request.param)


# --- masked LM ------------------------------------------------------------------------------------------

def test_masked_lm_export_equals_fairseq(mlm_export, gpt2_bpe_dir):
    assert sorted(set(os.listdir(mlm_export.out)) - {MARKER}) == sorted(to_hf.OUTPUT_FILES)
    config = json.loads((mlm_export.out / "config.json").read_text())
    fairseq_cfg = model_config(load_checkpoint(mlm_export.checkpoint))
    assert config["architectures"] == ["RobertaForMaskedLM"]
    assert [config[key] for key in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                    "intermediate_size")] == \
        [fairseq_cfg[key] for key in ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads",
                                      "encoder_ffn_embed_dim")]
    assert config["max_position_embeddings"] == fairseq_cfg["max_positions"] + 2
    assert [config[key] for key in ("pad_token_id", "type_vocab_size", "layer_norm_eps")] == [1, 1, 1e-5]

    # the reference: fairseq's hub interface (its GPT-2 encoder, dictionary and model)
    checkpoint = mlm_export.checkpoint
    hub = RobertaModel.from_pretrained(str(checkpoint.parent), checkpoint_file=checkpoint.name,
                                       data_name_or_path=str(mlm_export.data_bin), bpe="gpt2",
                                       gpt2_encoder_json=str(gpt2_bpe_dir / "encoder.json"),
                                       gpt2_vocab_bpe=str(gpt2_bpe_dir / "vocab.bpe")).eval()
    dictionary_size = len(hub.task.source_dictionary)
    tokenizer = AutoTokenizer.from_pretrained(str(mlm_export.out))
    model = AutoModelForMaskedLM.from_pretrained(str(mlm_export.out)).eval()

    texts = wiki_paragraphs()[-12:]  # the last article: outside the corpus dictionary's slice
    expected = [truncated(hub.encode(text).tolist()) for text in texts]
    encoded = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    real = encoded["attention_mask"].bool()
    hf_ids = [row[mask].tolist() for row, mask in zip(encoded["input_ids"], real)]
    assert [[3 if i >= dictionary_size else i for i in ids] for ids in hf_ids] == expected
    with torch.no_grad():
        batch = data_utils.collate_tokens([torch.tensor(ids) for ids in expected], pad_idx=1)
        reference = hub.model(batch)[0]
        logits = model(**encoded).logits
    difference = float((logits[..., :dictionary_size][real] - reference[real]).abs().max())
    unknown = sum(ids.count(3) for ids in expected)
    print(f"\nmasked LM ({mlm_export.data_bin.name}), {len(texts)} paragraphs, {int(real.sum())} tokens "
          f"({unknown} <unk>): max |logit difference| {difference:.2e}")
    assert difference <= TOLERANCE
    assert "verification: 6 sequences" in mlm_export.printed and "-> OK" in mlm_export.printed


@pytest.mark.parametrize("which", ["official_mlm_export", "corpus_mlm_export"])
def test_tokenizer_equals_fairseq_on_real_text(which, request, gpt2_bpe_dir):
    """Every wiki paragraph and a tenth of the SQuAD questions with their contexts: the exported tokenizer
    gives fairseq's indices, tokens outside the dictionary as alias ids standing for <unk> (merges through
    tokens missing from the dictionary still happen, so known tokens come out unchanged)."""
    exported = request.getfixturevalue(which)
    dictionary = Dictionary.load(str(exported.data_bin / "dict.txt"))
    dictionary.add_symbol("<mask>")
    encoder = get_encoder(str(gpt2_bpe_dir / "encoder.json"), str(gpt2_bpe_dir / "vocab.bpe"))
    tokenizer = AutoTokenizer.from_pretrained(str(exported.out))
    texts = wiki_paragraphs()
    for example in load_squad(shared_path("data", "squad2", "squad2-dev-part.json")).examples[::10]:
        texts += [example.context, example.question]
    hf_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    mismatches, tokens, unknown = [], 0, 0
    for text, ids in zip(texts, hf_ids):
        expected = fairseq_reference_ids(encoder, dictionary, text)
        tokens, unknown = tokens + len(expected), unknown + expected.count(3)
        if [3 if i >= len(dictionary) else i for i in ids] != expected:
            mismatches.append(text[:60])
    print(f"\n{which}: {len(texts)} texts, {tokens} tokens, {unknown} <unk>: {len(mismatches)} differ")
    assert not mismatches
    if which == "corpus_mlm_export":
        assert unknown > tokens // 10


def test_alias_ids_are_unk_to_the_model(corpus_mlm_export):
    dictionary_size = len(Dictionary.load(str(corpus_mlm_export.data_bin / "dict.txt"))) + 1  # + <mask>
    assert f"alias ids {dictionary_size}.." in corpus_mlm_export.printed
    tokenizer = AutoTokenizer.from_pretrained(str(corpus_mlm_export.out))
    model = AutoModelForMaskedLM.from_pretrained(str(corpus_mlm_export.out)).eval()
    assert len(tokenizer) == model.config.vocab_size > dictionary_size
    assert tokenizer.convert_tokens_to_ids("<mask>") == dictionary_size - 1
    ids = tokenizer("Zoroastrianism predates the Achaemenid Empire.", return_tensors="pt")["input_ids"]
    assert (ids >= dictionary_size).sum() > 0
    with torch.no_grad():
        with_aliases = model(ids).logits
        with_unk = model(ids.masked_fill(ids >= dictionary_size, 3)).logits
    assert torch.equal(with_aliases, with_unk)
    assert float(with_aliases[..., dictionary_size:].max()) < -1e3  # never predicted
    fill_mask = pipeline("fill-mask", model=str(corpus_mlm_export.out), top_k=20)
    assert all(guess["token"] < dictionary_size for guess in fill_mask("The capital of France is <mask>."))


def test_legacy_checkpoint_exports_the_same_model(official_mlm_export, wiki_data_bin, gpt2_bpe_dir, tmp_path):
    """fairseq 0.9 format (args Namespace, decoder.*, emb_layer_norm, fused in_proj): identical tensors."""
    legacy = make_legacy_checkpoint(official_mlm_export.checkpoint, wiki_data_bin, tmp_path / "model.pt")
    run_export(legacy, wiki_data_bin, gpt2_bpe_dir, tmp_path / "hf", "--dict",
               str(wiki_data_bin / "dict.txt"))
    modern = load_file(official_mlm_export.out / "model.safetensors")
    old = load_file(tmp_path / "hf" / "model.safetensors")
    assert set(modern) == set(old) and all(torch.equal(modern[key], old[key]) for key in modern)


# --- safety and errors ----------------------------------------------------------------------------------

def test_failed_verification_exits_1_and_writes_nothing(tiny_pretrained_checkpoint, gpt2_bpe_dir, tmp_path,
                                                        monkeypatch, capsys):
    """The classic export bug, positions not offset by padding_idx + 1, is caught and nothing is written."""
    convert_state = to_hf.hf_state_dict

    def positions_off_by_two(*args):
        state = convert_state(*args)
        positions = state["roberta.embeddings.position_embeddings.weight"]
        state["roberta.embeddings.position_embeddings.weight"] = torch.cat([positions[2:], positions[:2]])
        return state

    monkeypatch.setattr(to_hf, "hf_state_dict", positions_off_by_two)
    out = tmp_path / "hf"
    status = fairseq_to_hf.main(["--checkpoint", str(tiny_pretrained_checkpoint), "--gpt2-bpe",
                                 str(gpt2_bpe_dir), "--out", str(out)])
    error = capsys.readouterr().err
    assert status == 1
    assert "verification failed, nothing written" in error and "ids identical" in error
    difference = float(error.split("max |logit difference| ")[1].split()[0])
    assert difference > TOLERANCE
    assert os.listdir(tmp_path) == []  # no output, no temporary directory left


def test_existing_output_needs_force(official_mlm_export, gpt2_bpe_dir, tmp_path):
    """An earlier export is replaced with --force only; a directory holding anything else never."""
    foreign, out = tmp_path / "foreign", tmp_path / "hf"
    foreign.mkdir()
    (foreign / "old-file").write_text("x")
    argv = ["--checkpoint", str(official_mlm_export.checkpoint), "--gpt2-bpe", str(gpt2_bpe_dir),
            "--no-verify"]
    with pytest.raises(UserInputError, match="exists and was not written by fairseq_to_hf"):
        fairseq_to_hf.main([*argv, "--out", str(foreign), "--force"])
    assert os.listdir(foreign) == ["old-file"]
    run_export(official_mlm_export.checkpoint, official_mlm_export.data_bin, gpt2_bpe_dir, out, "--no-verify")
    with pytest.raises(UserInputError, match="exists: pass --force"):
        fairseq_to_hf.main([*argv, "--out", str(out)])
    run_export(official_mlm_export.checkpoint, official_mlm_export.data_bin, gpt2_bpe_dir, out, "--force")
    assert sorted(set(os.listdir(out)) - {MARKER}) == sorted(to_hf.OUTPUT_FILES)
    assert sorted(os.listdir(tmp_path)) == ["foreign", "hf"]


def renamed_model_checkpoint(checkpoint: Path, model_name: str, dest: Path) -> Path:
    state = load_checkpoint(checkpoint)
    state["cfg"]["model"]["_name"] = model_name
    torch.save(state, dest)
    return dest


@pytest.mark.parametrize("case, message", [
    ("missing checkpoint", "checkpoint not found"),
    ("not a checkpoint", "cannot load checkpoint"),
    ("not RoBERTa", r"not a RoBERTa checkpoint \(model 'transformer_lm'\)"),
    ("wrong dictionary", r"the embedding has 50265 rows but the dictionary gives \d+ symbols with <mask>: "
                         r"pass the dict.txt the model was trained with \(--dict\)"),
    ("missing dictionary", r"dictionary \(dict.txt of the model.s training data, see --dict\) not found"),
])
def test_one_line_errors(case, message, tiny_pretrained_checkpoint, corpus_data_bin, gpt2_bpe_dir, tmp_path):
    checkpoint, extra = tiny_pretrained_checkpoint, []
    if case == "missing checkpoint":
        checkpoint = tmp_path / "missing.pt"
    elif case == "not a checkpoint":
        checkpoint = tmp_path / "notes.pt"
        checkpoint.write_text("not a checkpoint\n")
    elif case == "not RoBERTa":
        checkpoint = renamed_model_checkpoint(checkpoint, "transformer_lm", tmp_path / "lm.pt")
    elif case == "wrong dictionary":
        extra = ["--dict", str(corpus_data_bin / "dict.txt")]
    else:
        extra = ["--dict", str(tmp_path / "dict.txt")]
    with pytest.raises(UserInputError, match=message):
        fairseq_to_hf.main(["--checkpoint", str(checkpoint), "--gpt2-bpe", str(gpt2_bpe_dir),
                            "--out", str(tmp_path / "hf"), *extra])
    assert not (tmp_path / "hf").exists()


def test_cli_error_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "convert" / "fairseq_to_hf.py"), "--checkpoint",
                           str(tmp_path / "missing.pt"), "--out", str(tmp_path / "hf")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == f"fairseq_to_hf.py: error: checkpoint not found: {tmp_path / 'missing.pt'}\n"


# --- span QA --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_squad_checkpoint(corpus_checkpoint, corpus_data_bin, gpt2_bpe_dir, tmp_path_factory) -> Path:
    """roberta_span_qa_tiny fine-tuned (one epoch) from the corpus-dictionary model: its SQuAD data is
    prepared with that dictionary (a GPT-2 BPE directory whose dict.txt is the corpus one)."""
    work = tmp_path_factory.mktemp("corpus-squad")
    bpe_dir = work / "gpt2_bpe"
    bpe_dir.mkdir()
    for name in ("encoder.json", "vocab.bpe"):
        (bpe_dir / name).symlink_to(gpt2_bpe_dir / name)
    shutil.copyfile(corpus_data_bin / "dict.txt", bpe_dir / "dict.txt")
    data_bin = prepare_squad(squad_articles(TRAIN_ARTICLES, work / "train.json"),
                             squad_articles(VALID_ARTICLES, work / "valid.json"), bpe_dir, work / "data-bin")
    run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", data_bin, "--restore",
                     corpus_checkpoint, "--save-dir", work / "checkpoints", "optimization.max_epoch=1")
    return work / "checkpoints" / "checkpoint_best.pt"


def export_squad_checkpoint(checkpoint: Path, gpt2_bpe_dir: Path, out: Path) -> Export:
    data_bin = Path(load_checkpoint(checkpoint)["cfg"]["task"]["data"])  # prepare_squad2.py's, with dict.txt
    return run_export(checkpoint, data_bin, gpt2_bpe_dir, out)


@pytest.fixture(scope="module")
def official_squad_export(tiny_squad_checkpoint, gpt2_bpe_dir, tmp_path_factory) -> Export:
    return export_squad_checkpoint(tiny_squad_checkpoint, gpt2_bpe_dir,
                                   tmp_path_factory.mktemp("hf-squad-official") / "model")


@pytest.fixture(params=["official dict", pytest.param("corpus dict", marks=pytest.mark.slow)])
def squad_export(request, gpt2_bpe_dir, tmp_path) -> Export:
    if request.param == "official dict":
        return request.getfixturevalue("official_squad_export")
    return export_squad_checkpoint(request.getfixturevalue("corpus_squad_checkpoint"), gpt2_bpe_dir,
                                   tmp_path / "hf")


def test_span_qa_export_equals_fairseq(squad_export, gpt2_bpe_dir):
    config = json.loads((squad_export.out / "config.json").read_text())
    task_cfg = load_checkpoint(squad_export.checkpoint)["cfg"]["task"]
    assert config["architectures"] == ["RobertaForQuestionAnswering"]
    assert config["squad_settings"] == {name: task_cfg[name] for name in (
        "max_seq_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length",
        "null_score_diff_threshold")}
    assert "dictionary: " + str(squad_export.data_bin / "dict.txt") in squad_export.printed  # the default

    # the reference: the fine-tuned model as fairseq loads it, inputs from fairseq's own encoder
    [fairseq_model], _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(squad_export.checkpoint)], arg_overrides={"data": str(squad_export.data_bin)})
    fairseq_model.eval()
    dictionary = task.source_dictionary
    encoder = get_encoder(str(gpt2_bpe_dir / "encoder.json"), str(gpt2_bpe_dir / "vocab.bpe"))
    squad = load_squad(shared_path("data", "squad2", "squad2-dev-part.json"))
    examples = [example for example in squad.examples if example.title == "Warsaw"][:24]
    questions = [example.question.lstrip() for example in examples]
    expected = []
    for question, example in zip(questions, examples):
        question_ids = fairseq_reference_ids(encoder, dictionary, question)
        context_ids = fairseq_reference_ids(encoder, dictionary, example.context)
        expected.append([0, *question_ids, 2, 2, *context_ids[:MAX_LENGTH - len(question_ids) - 4], 2])

    tokenizer = AutoTokenizer.from_pretrained(str(squad_export.out))
    model = AutoModelForQuestionAnswering.from_pretrained(str(squad_export.out)).eval()
    encoded = tokenizer(questions, [example.context for example in examples], truncation="only_second",
                        max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    real = encoded["attention_mask"].bool()
    hf_ids = [row[mask].tolist() for row, mask in zip(encoded["input_ids"], real)]
    assert [[3 if i >= len(dictionary) else i for i in ids] for ids in hf_ids] == expected
    with torch.no_grad():
        batch = data_utils.collate_tokens([torch.tensor(ids) for ids in expected], pad_idx=1)
        reference = fairseq_model(batch)
        output = model(**encoded)
    difference = max(float((hf[real] - fs[real]).abs().max())
                     for hf, fs in zip((output.start_logits, output.end_logits), reference))
    unknown = sum(ids.count(3) for ids in expected)
    print(f"\nspan QA ({squad_export.data_bin.parent.name}), {len(examples)} questions, "
          f"{int(real.sum())} tokens ({unknown} <unk>): max |start/end logit difference| {difference:.2e}")
    assert difference <= TOLERANCE


def test_classification_heads_are_reported_not_exported(official_mlm_export, gpt2_bpe_dir, tmp_path):
    state = load_checkpoint(official_mlm_export.checkpoint)
    hidden = state["model"]["encoder.sentence_encoder.embed_tokens.weight"].shape[1]
    head = {"dense.weight": torch.randn(hidden, hidden), "dense.bias": torch.zeros(hidden),
            "out_proj.weight": torch.randn(3, hidden), "out_proj.bias": torch.zeros(3)}
    state["model"].update({f"classification_heads.mnli.{name}": tensor for name, tensor in head.items()})
    torch.save(state, tmp_path / "with_head.pt")
    data_bin = official_mlm_export.data_bin
    exported = run_export(tmp_path / "with_head.pt", data_bin, gpt2_bpe_dir, tmp_path / "hf")
    assert "not exported: classification head 'mnli' (no counterpart in RobertaForMaskedLM)" \
        in exported.printed
    without_head = load_file(official_mlm_export.out / "model.safetensors")
    with_head = load_file(exported.out / "model.safetensors")
    assert set(with_head) == set(without_head)
    assert all(torch.equal(tensor, without_head[key]) for key, tensor in with_head.items())


def test_untied_output_embeddings(official_mlm_export, gpt2_bpe_dir, tmp_path):
    """untie_weights_roberta: the LM head's own projection is exported (and verified) untied."""
    state = load_checkpoint(official_mlm_export.checkpoint)
    state["cfg"]["model"]["untie_weights_roberta"] = True
    projection = state["model"]["encoder.lm_head.weight"].clone() + 0.05 * torch.randn_like(
        state["model"]["encoder.lm_head.weight"])
    state["model"]["encoder.lm_head.weight"] = projection
    torch.save(state, tmp_path / "untied.pt")
    exported = run_export(tmp_path / "untied.pt", official_mlm_export.data_bin, gpt2_bpe_dir, tmp_path / "hf")
    assert "-> OK" in exported.printed
    model = AutoModelForMaskedLM.from_pretrained(str(exported.out))
    assert not model.config.tie_word_embeddings
    assert torch.equal(model.lm_head.decoder.weight, projection)
    assert not torch.equal(model.roberta.embeddings.word_embeddings.weight, projection)


# --- round trip through Hugging Face ----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["official_mlm_export", "corpus_mlm_export", "official_squad_export"])
def test_fairseq_hf_fairseq_round_trip_is_bit_exact(which, request, gpt2_bpe_dir, tmp_path):
    """convert/hf_to_fairseq.py on an export gives back every tensor of the checkpoint bit for bit, the
    dictionary, and (span QA) the task's windows and answer settings."""
    exported = request.getfixturevalue(which)
    out = tmp_path / "fairseq"
    with contextlib.redirect_stdout(io.StringIO()):
        assert hf_to_fairseq.main(["--model", str(exported.out), "--out", str(out), "--gpt2-bpe",
                                   str(gpt2_bpe_dir)]) == 0
    original, back = load_checkpoint(exported.checkpoint), load_checkpoint(out / "model.pt")
    weights = [{key: tensor for key, tensor in state["model"].items() if not NOT_WEIGHTS.search(key)}
               for state in (original, back)]
    assert weights[0].keys() == weights[1].keys()
    differing = [key for key in weights[0] if weights[0][key].dtype != weights[1][key].dtype
                 or not torch.equal(weights[0][key], weights[1][key])]
    assert not differing
    dictionaries = [Dictionary.load(str(path / "dict.txt")) for path in (out, exported.data_bin)]
    assert dictionaries[0].symbols == dictionaries[1].symbols
    if which == "official_squad_export":
        settings = ("max_seq_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length",
                    "null_score_diff_threshold")
        assert {name: back["cfg"]["task"][name] for name in settings} == \
            {name: original["cfg"]["task"][name] for name in settings}
        assert back["cfg"]["model"]["_name"] == "roberta_span_qa"
    print(f"\n{which}: {len(weights[0])} tensors, all bit-identical after fairseq -> HF -> fairseq")
