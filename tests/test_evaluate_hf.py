"""convert/evaluate_hf.py: the exported tiny SQuAD model evaluated with transformers alone (fairseq made
impossible to import) gives the answers and scores of the fairseq side, scripts/predict_squad2.py."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_ext.commands import evaluate_hf, fairseq_to_hf
from fairseq_ext.errors import UserInputError
from fairseq_ext.squad import load_squad
from tests.conftest import REPO
from tests.squad_fixtures import VALID_ARTICLES, run_squad_script, squad_articles

# runs a convert/ script with `import fairseq` made impossible (ImportError wherever it is tried)
WITHOUT_FAIRSEQ = ("import runpy, sys; sys.modules['fairseq'] = None; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_without_fairseq(script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_FAIRSEQ, str(REPO / "convert" / script),
                           *map(str, args)], capture_output=True, text=True, timeout=600)


def export_squad_model(checkpoint: Path, gpt2_bpe_dir: Path, out: Path) -> Path:
    with contextlib.redirect_stdout(io.StringIO()):
        assert fairseq_to_hf.main(["--checkpoint", str(checkpoint), "--gpt2-bpe", str(gpt2_bpe_dir),
                                   "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def squad_export(tiny_squad_checkpoint, gpt2_bpe_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf-squad") / "model"
    return export_squad_model(tiny_squad_checkpoint, gpt2_bpe_dir, out)


@pytest.fixture(scope="module")
def evaluation_json(tmp_path_factory) -> Path:
    """Two shared articles the tiny model was not trained on (517 questions, 289 unanswerable)."""
    return squad_articles(VALID_ARTICLES + ("1973_oil_crisis",), tmp_path_factory.mktemp("eval") / "dev.json")


def read(directory: Path, name: str):
    return json.loads((directory / name).read_text(encoding="utf-8"))


def best_spans(nbest: dict) -> dict:
    """Question id -> the best non-empty candidate answer (what is predicted when the null score loses)."""
    return {qid: next(c["text"] for c in candidates if c["text"]) for qid, candidates in nbest.items()}


def test_agrees_with_predict_squad2_without_importing_fairseq(squad_export, tiny_squad_checkpoint,
                                                              evaluation_json, gpt2_bpe_dir, tmp_path):
    hf_out, fairseq_out = tmp_path / "hf", tmp_path / "fairseq"
    done = run_without_fairseq("evaluate_hf.py", "--model", squad_export, "--data", evaluation_json,
                               "--out", hf_out, "--show-examples", "3", "--batch-size", "16")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "settings: max_seq_length=128, doc_stride=32, max_query_length=32" in done.stdout  # the model's
    assert done.stdout.count("\n    gold: ") == 3 and done.stdout.count("\n    predicted: ") == 3
    run_squad_script("predict_squad2.py", "--checkpoint", tiny_squad_checkpoint, "--data", evaluation_json,
                     "--gpt2-bpe", gpt2_bpe_dir, "--out", fairseq_out)

    for name in ("predictions.json", "null_odds.json", "nbest_predictions.json", "eval_results.json"):
        assert (hf_out / name).is_file(), name
    hf_answers, fairseq_answers = read(hf_out, "predictions.json"), read(fairseq_out, "predictions.json")
    assert set(hf_answers) == set(fairseq_answers) and len(hf_answers) == 517
    same_answers = sum(hf_answers[qid] == fairseq_answers[qid] for qid in hf_answers) / len(hf_answers)
    # the tiny model mostly answers "": the best spans show that span selection agrees as well
    hf_spans, fairseq_spans = (best_spans(read(out, "nbest_predictions.json"))
                               for out in (hf_out, fairseq_out))
    same_spans = sum(hf_spans[qid] == fairseq_spans[qid] for qid in hf_spans) / len(hf_spans)
    hf_odds, fairseq_odds = read(hf_out, "null_odds.json"), read(fairseq_out, "null_odds.json")
    odds_difference = max(abs(hf_odds[qid] - fairseq_odds[qid]) for qid in hf_odds)
    hf_scores, fairseq_scores = read(hf_out, "eval_results.json"), read(fairseq_out, "eval_results.json")
    print(f"\nHF vs fairseq on {len(hf_answers)} questions: identical answers {same_answers:.2%}, identical "
          f"best spans {same_spans:.2%}, max |null odds difference| {odds_difference:.1e}; EM "
          f"{hf_scores['exact']:.2f} vs {fairseq_scores['exact']:.2f}, F1 {hf_scores['f1']:.2f} vs "
          f"{fairseq_scores['f1']:.2f}")
    assert same_answers >= 0.995 and same_spans >= 0.995
    assert odds_difference < 1e-3
    assert set(hf_scores) == set(fairseq_scores)
    assert abs(hf_scores["exact"] - fairseq_scores["exact"]) <= 0.1
    assert abs(hf_scores["f1"] - fairseq_scores["f1"]) <= 0.1


def test_max_samples_evaluates_the_first_questions(squad_export, evaluation_json, tmp_path, capsys):
    assert evaluate_hf.main(["--model", str(squad_export), "--data", str(evaluation_json), "--out",
                             str(tmp_path), "--max-samples", "20"]) == 0
    assert "evaluating the first 20 of 517 questions" in capsys.readouterr().out
    first = [qa["id"] for article in read(evaluation_json.parent, evaluation_json.name)["data"]
             for paragraph in article["paragraphs"] for qa in paragraph["qas"]][:20]
    assert list(read(tmp_path, "predictions.json")) == first
    assert read(tmp_path, "eval_results.json")["total"] == 20


@pytest.mark.parametrize("case, message", [
    ("no model", "not a Hugging Face model directory"),
    ("bad data", "not valid JSON"),
    ("window too long", "max_seq_length 256 exceeds the model's 128 positions"),
])
def test_one_line_errors(case, message, squad_export, evaluation_json, tmp_path):
    model, data, extra = squad_export, evaluation_json, []
    if case == "no model":
        model = tmp_path / "not-a-model"
        model.mkdir()
    elif case == "bad data":
        data = tmp_path / "dev.json"
        data.write_text('{"data": [')
    else:
        extra = ["--max-seq-length", "256"]
    with pytest.raises(UserInputError, match=message):
        evaluate_hf.main(["--model", str(model), "--data", str(data), "--out", str(tmp_path / "out"), *extra])


def test_export_with_card_and_best_threshold(tiny_squad_checkpoint, squad_export, squad2_data_bin,
                                             gpt2_bpe_dir, tmp_path, capsys):
    """eval_results.json -> --eval-results + --null-threshold best: the card (valid for huggingface_hub,
    offline) carries the model-index, config.json the threshold, and evaluate_hf uses and names it."""
    from huggingface_hub import ModelCard

    # the questions the tiny model was fine-tuned on: its most confident answers there are right, so the
    # best null threshold beats answering nothing (on unseen questions this tiny model never does)
    trained_on = squad2_data_bin.parent / "train.json"
    first = tmp_path / "first-eval"  # always answering: best_f1_thresh then says where null should win
    assert evaluate_hf.main(["--model", str(squad_export), "--data", str(trained_on), "--out",
                             str(first), "--max-samples", "120", "--null-score-diff-threshold=1e9"]) == 0
    results = read(first, "eval_results.json")
    out = tmp_path / "published"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert fairseq_to_hf.main(["--checkpoint", str(tiny_squad_checkpoint), "--gpt2-bpe",
                                   str(gpt2_bpe_dir), "--out", str(out), "--eval-results",
                                   str(first / "eval_results.json"),
                                   "--null-threshold", "best", "--license", "mit"]) == 0
    threshold = results["best_f1_thresh"]
    assert threshold != 0.0  # not the default: storing it shows
    assert f"null_score_diff_threshold: {threshold:g} (from best_f1_thresh of eval_results.json)" \
        in printed.getvalue()
    assert read(out, "config.json")["squad_settings"]["null_score_diff_threshold"] == threshold

    card = ModelCard.load(out / "README.md")  # parses and validates the metadata and model-index
    assert card.data.pipeline_tag == "question-answering" and card.data.language == ["en"]
    assert card.data.license == "mit" and card.data.library_name == "transformers"
    metrics = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert metrics == {name: round(results[key], 2) for key, name in (
        ("exact", "EM"), ("f1", "F1"), ("HasAns_exact", "HasAns EM"), ("HasAns_f1", "HasAns F1"),
        ("NoAns_exact", "NoAns EM"), ("NoAns_f1", "NoAns F1"))}
    # scored on a file of ours, not the official dev set: labelled custom, named by the file
    assert {(result.dataset_type, result.dataset_name) for result in card.data.eval_results} == {
        ("custom", "train.json")}
    assert "squad_v2" not in card.data.tags and "extractive-qa" in card.data.tags  # not even as a tag
    assert results["no_answer_baseline"] == pytest.approx(
        100 * sum(not example.answers for example in load_squad(trained_on).examples[:120]) / 120)
    for expected in ("task._name`: `squad2`", "checkpoint.restore_file", "ids identical",
                     f"null_score_diff_threshold={threshold:g}", "convert/predict_hf.py --model published",
                     "M parameters", "tokenizer: GPT-2 byte-level BPE", "not an official SQuAD file",
                     f"| answering nothing (baseline: EM = F1) | {results['no_answer_baseline']:.2f} |",
                     "official SQuAD 2.0 metric"):
        assert expected in card.text, expected
    for directory in (tmp_path, tiny_squad_checkpoint.parent, squad2_data_bin):  # no path of the builder
        assert str(directory) not in card.text and str(directory.resolve()) not in card.text

    capsys.readouterr()
    stored, flagged = tmp_path / "stored", tmp_path / "flagged"
    assert evaluate_hf.main(["--model", str(out), "--data", str(trained_on), "--out", str(stored),
                             "--max-samples", "120"]) == 0
    assert f"null_score_diff_threshold={threshold} (null threshold: stored in the model)" \
        in capsys.readouterr().out
    assert evaluate_hf.main(["--model", str(squad_export), "--data", str(trained_on), "--out",
                             str(flagged), "--max-samples", "120",
                             f"--null-score-diff-threshold={threshold}"]) == 0
    assert "(null threshold: --null-score-diff-threshold)" in capsys.readouterr().out
    assert read(stored, "predictions.json") == read(flagged, "predictions.json")
    assert read(stored, "predictions.json") != read(first, "predictions.json")
    print(f"\nbest_f1_thresh {threshold:g}: F1 {results['f1']:.2f} -> "
          f"{read(stored, 'eval_results.json')['f1']:.2f}")


def test_hf_commands_import_no_fairseq():
    """What `python -X importtime` shows for the HF-side commands: not one fairseq module."""
    for script in ("evaluate_hf.py", "predict_hf.py"):
        done = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "convert" / script), "--help"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        modules = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                   if line.startswith("import time:")]
        assert "fairseq_ext.cli" in modules
        assert not [module for module in modules if module.split(".")[0] == "fairseq"], script


def test_sentencepiece_model_exports_and_answers_as_fairseq(cmrc_checkpoint, cmrc_squad_files, spm_dir,
                                                            tmp_path):
    """A SentencePiece (XLM-R layout) span-QA model: exported with XLM-R's tokenizer, verified, and its
    CMRC 2018 scores with transformers are fairseq's (predict_squad2.py)."""
    from transformers import AutoTokenizer

    from fairseq_ext.commands import predict_squad2

    out, hf_out, fairseq_out = tmp_path / "hf", tmp_path / "hf-answers", tmp_path / "fairseq-answers"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert fairseq_to_hf.main(["--checkpoint", str(cmrc_checkpoint), "--gpt2-bpe", str(spm_dir), "--out",
                                   str(out), "--language", "zh"]) == 0
    assert "verification: 5 sequences" in printed.getvalue() and "-> OK" in printed.getvalue()
    assert type(AutoTokenizer.from_pretrained(str(out))).__name__.startswith("XLMRobertaTokenizer")
    dev = cmrc_squad_files[1]
    with contextlib.redirect_stdout(io.StringIO()):
        assert evaluate_hf.main(["--model", str(out), "--data", str(dev), "--out", str(hf_out),
                                 "--metric", "cmrc"]) == 0
        predict_squad2.main(["--checkpoint", str(cmrc_checkpoint), "--data", str(dev), "--tokenizer",
                             str(spm_dir), "--out", str(fairseq_out), "--metric", "cmrc"])
    hf_answers, fairseq_answers = read(hf_out, "predictions.json"), read(fairseq_out, "predictions.json")
    same = sum(hf_answers[qid] == fairseq_answers[qid] for qid in hf_answers) / len(hf_answers)
    scores = [read(directory, "eval_results.json") for directory in (hf_out, fairseq_out)]
    print(f"\nSentencePiece export, {len(hf_answers)} CMRC questions: identical answers {same:.2%}; "
          f"F1 {scores[0]['F1']} vs {scores[1]['F1']}")
    assert same >= 0.99 and scores[0]["F1"] == scores[1]["F1"] and scores[0]["EM"] == scores[1]["EM"]
