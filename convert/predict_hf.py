"""Answer questions about a text with an exported model (transformers only).

    python convert/predict_hf.py --model hf/roberta-squad2 --question "Who ...?" --context "..."
    python convert/predict_hf.py --model hf/roberta-squad2            # interactive, reads stdin

Prints the answer and its confidence (its share of the n-best candidates' softmax, as run_qa computes
it), or "no answer" when the null score wins (SQuAD 2.0 semantics, --null-score-diff-threshold).
Interactive mode: a context line, then questions one per line; an empty line asks for a new context.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence, TextIO

from evaluate_hf import add_answer_arguments, answer_questions, load_qa_model, resolve_settings

from fairseq_ext.cli import UserInputError, run_cli
from fairseq_ext.squad import SquadExample

NO_ANSWER = "no answer"


def answer(question: str, context: str, tokenizer, model, args: argparse.Namespace) -> tuple[str, float]:
    """(answer text, or "" for no answer; confidence in [0, 1])."""
    if not question.strip() or not context.strip():
        raise UserInputError("question and context must not be empty")
    example = SquadExample(qid="question", title="", context=context, question=question, answers=[],
                           is_impossible=False)
    predictions = answer_questions([example], tokenizer, model, args, version_2=True)
    text = predictions.answers[example.qid]
    confidence = next(candidate["probability"] for candidate in predictions.nbest[example.qid]
                      if candidate["text"] == text)
    return text, float(confidence)


def format_answer(text: str, confidence: float) -> str:
    return f"{text or NO_ANSWER}\t(confidence {confidence:.3f})"


def interactive(tokenizer, model, args: argparse.Namespace, lines: TextIO) -> None:
    """Context, then questions; an empty line asks for a new context; end of input stops."""
    prompt = sys.stdin.isatty()
    context = None
    while True:
        if prompt:
            print("context> " if context is None else "question> ", end="", file=sys.stderr, flush=True)
        line = lines.readline()
        if not line:
            return
        line = line.rstrip("\n")
        if not line.strip():
            context = None
        elif context is None:
            context = line
        else:
            print(format_answer(*answer(line, context, tokenizer, model, args)), flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Extractive QA with an exported RobertaForQuestionAnswering. Without --question and "
                    "--context: reads a context line, then question lines from stdin (empty line: new "
                    "context).")
    parser.add_argument("--model", required=True, help="Hugging Face model directory (fairseq_to_hf --out)")
    parser.add_argument("--question", help="the question")
    parser.add_argument("--context", help="the text holding the answer")
    add_answer_arguments(parser)
    args = parser.parse_args(argv)
    if (args.question is None) != (args.context is None):
        raise UserInputError("give both --question and --context, or neither for interactive mode")
    tokenizer, model = load_qa_model(args.model, args.device)
    resolve_settings(args, model)
    if args.question is None:
        interactive(tokenizer, model, args, sys.stdin)
    else:
        print(format_answer(*answer(args.question, args.context, tokenizer, model, args)))
    return 0


if __name__ == "__main__":
    run_cli(main)
