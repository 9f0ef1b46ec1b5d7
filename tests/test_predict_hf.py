"""convert/predict_hf.py: one question from the command line, or a context and questions from stdin, answered
as evaluate_hf answers whole SQuAD files (same windows and post-processing), "no answer" when null wins."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from fairseq_ext.commands import predict_hf
from fairseq_ext.errors import UserInputError
from fairseq_ext.hf import qa
from fairseq_ext.squad import load_squad
from tests.conftest import REPO, shared_path
from tests.test_evaluate_hf import WITHOUT_FAIRSEQ, export_squad_model


@pytest.fixture(scope="module")
def squad_export(tiny_squad_checkpoint, gpt2_bpe_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf-squad") / "model"
    return export_squad_model(tiny_squad_checkpoint, gpt2_bpe_dir, out)


@pytest.fixture(scope="module")
def questions():
    """Answerable and unanswerable questions of an article the tiny model was not trained on."""
    examples = load_squad(shared_path("data", "squad2", "squad2-dev-part.json")).examples
    return [example for example in examples if example.title == "Warsaw"][:12]


def batch_predictions(model_dir, examples, threshold: float):
    """What evaluate_hf computes for these questions (all in one batch)."""
    tokenizer, model = qa.load_qa_model(model_dir)
    settings, _ = qa.model_settings(model, {"null_score_diff_threshold": threshold})
    return qa.answer_questions(examples, tokenizer, model, settings, version_2=True)


def ask(model_dir, question: str, context: str, capsys, *extra: str) -> str:
    argv = ["--model", str(model_dir), "--question", question, "--context", context, *extra]
    assert predict_hf.main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("threshold", ["0", "1e9", "-1e9"])
def test_answers_as_evaluate_hf(threshold, squad_export, questions, capsys):
    """Default threshold (the model's), one that always answers, one that never does."""
    asked = questions[::3]  # a model load per question: 4 of them
    expected = batch_predictions(squad_export, questions, float(threshold))
    for example in asked:
        printed = ask(squad_export, example.question, example.context, capsys,
                      f"--null-score-diff-threshold={threshold}")
        answer, confidence = printed.rstrip("\n").split("\t")
        text = expected.answers[example.qid]
        assert answer == (text or predict_hf.NO_ANSWER)
        probability = next(c["probability"] for c in expected.nbest[example.qid] if c["text"] == text)
        assert confidence == f"(confidence {probability:.3f})"
    answered = sum(bool(expected.answers[example.qid]) for example in questions)
    if threshold == "1e9":
        assert answered == len(questions)
    elif threshold == "-1e9":
        assert answered == 0


def test_interactive_reads_contexts_and_questions(squad_export, questions, monkeypatch, capsys):
    """A context line, its questions, an empty line, another context and its question."""
    first = questions[0]
    same_context = next(q for q in questions[1:] if q.context == first.context)
    other_context = next(q for q in questions if q.context != first.context)
    asked = [first, same_context, other_context]
    stdin = (f"{first.context}\n{first.question}\n{same_context.question}\n\n"
             f"{other_context.context}\n{other_context.question}\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert predict_hf.main(["--model", str(squad_export), "--null-score-diff-threshold", "1e9"]) == 0
    answers = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    expected = batch_predictions(squad_export, asked, 1e9).answers
    assert answers == [expected[question.qid] for question in asked]


def test_answers_offline_without_fairseq(squad_export, questions):
    """What users run where only transformers is installed and nothing can be downloaded. (transformers
    5's pipeline() has no "question-answering" task any more: this command is its replacement.)"""
    example = questions[0]
    done = subprocess.run([sys.executable, "-c", WITHOUT_FAIRSEQ, str(REPO / "convert" / "predict_hf.py"),
                           "--model", str(squad_export), "--question", example.question, "--context",
                           example.context, "--null-score-diff-threshold=1e9"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    answer, confidence = done.stdout.strip().split("\t")
    assert answer == batch_predictions(squad_export, [example], 1e9).answers[example.qid] != ""
    assert confidence.startswith("(confidence ")


def test_question_needs_a_context(squad_export):
    with pytest.raises(UserInputError, match="give both --question and --context"):
        predict_hf.main(["--model", str(squad_export), "--question", "Where?"])
