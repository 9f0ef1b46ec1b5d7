"""convert/predict_hf.py: answer questions about a text with an exported model (transformers only).

Prints the answer and its confidence (its share of the n-best candidates' softmax, as run_qa computes
it), or "no answer" when the null score wins (SQuAD 2.0 semantics; the threshold stored in the model
unless --null-score-diff-threshold is given). Interactive mode: a context line, then questions one per
line; an empty line asks for a new context.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence, TextIO

from fairseq_ext.cli import device_of, run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.hf.hub import model_directory

NO_ANSWER = "no answer"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from fairseq_ext.hf.qa import add_answer_arguments

    parser = argparse.ArgumentParser(
        prog="predict_hf.py",
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
    return args


class Answerer:
    """One model, its settings, one question at a time."""

    def __init__(self, tokenizer, model, settings, batch_size: int, device: str,
                 max_tokens: Optional[int] = None):
        self.tokenizer, self.model, self.settings = tokenizer, model, settings
        self.batch_size, self.device, self.max_tokens = batch_size, device, max_tokens

    def __call__(self, question: str, context: str) -> tuple[str, float]:
        """(answer text, or "" for no answer; confidence in [0, 1])."""
        from fairseq_ext.hf.qa import answer_questions
        from fairseq_ext.squad import SquadExample

        if not question.strip() or not context.strip():
            raise UserInputError("question and context must not be empty")
        example = SquadExample(qid="question", title="", context=context, question=question, answers=[],
                               is_impossible=False)
        predictions = answer_questions([example], self.tokenizer, self.model, self.settings, version_2=True,
                                       batch_size=self.batch_size, device=self.device,
                                       max_tokens=self.max_tokens)
        text = predictions.answers[example.qid]
        confidence = next(candidate["probability"] for candidate in predictions.nbest[example.qid]
                          if candidate["text"] == text)
        return text, float(confidence)


def format_answer(text: str, confidence: float) -> str:
    return f"{text or NO_ANSWER}\t(confidence {confidence:.3f})"


def interactive(answer: Answerer, lines: TextIO) -> None:
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
            print(format_answer(*answer(line, context)), flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    model_directory(args.model)  # before torch and transformers load: a wrong path fails at once
    from fairseq_ext.hf.qa import load_qa_model, model_settings
    from fairseq_ext.squad.predict import check_batching

    check_batching(args)

    device = device_of(args.device)
    tokenizer, model = load_qa_model(args.model, device)
    settings, described = model_settings(model, args)
    print(f"settings: {described}", file=sys.stderr)
    answer = Answerer(tokenizer, model, settings, args.batch_size, device, args.max_tokens)
    if args.question is None:
        interactive(answer, sys.stdin)
    else:
        print(format_answer(*answer(args.question, args.context)))
    return 0


def cli() -> None:
    run_cli(main)
