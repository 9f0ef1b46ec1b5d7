"""convert/evaluate_hf.py: SQuAD v2 (or v1.1) evaluation of an exported model with transformers only.

Loads the model with ``AutoTokenizer`` / ``AutoModelForQuestionAnswering`` and runs the project's shared
SQuAD code (the same windows, post-processing and official metric as scripts/predict_squad2.py), so its
predictions are those of the fairseq model. Writes predictions.json (question id -> answer, "" for no
answer), null_odds.json (SQuAD 2.0), nbest_predictions.json and, when the data has gold answers,
eval_results.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import bounded_int, device_of, positive_int, run_cli
from fairseq_ext.errors import UserInputError


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from fairseq_ext.hf.qa import add_answer_arguments, add_precision_arguments
    from fairseq_ext.squad.metric import METRICS

    parser = argparse.ArgumentParser(prog="evaluate_hf.py",
                                     description="Evaluate an exported RobertaForQuestionAnswering on SQuAD "
                                                 "JSON with transformers and the project's SQuAD code.")
    parser.add_argument("--model", required=True, help="Hugging Face model directory (fairseq_to_hf --out)")
    parser.add_argument("--data", required=True, help="SQuAD v2.0 or v1.1 JSON")
    parser.add_argument("--out", required=True, type=Path, help="directory for the prediction files")
    parser.add_argument("--max-samples", type=positive_int, default=None,
                        help="evaluate the first N questions only")
    parser.add_argument("--show-examples", type=bounded_int(min=0), default=0, metavar="K",
                        help="print K questions with gold and predicted answers")
    parser.add_argument("--metric", choices=METRICS, default="squad",
                        help="eval_results.json's metric: squad (official SQuAD v1.1/v2.0, default) or cmrc "
                             "(CMRC 2018: Chinese, mixed segmentation)")
    parser.add_argument("--csv", type=Path, metavar="CSV",
                        help="also write the answers as ID,Answer rows to this file")
    add_answer_arguments(parser)
    add_precision_arguments(parser, "the model runs")
    return parser.parse_args(argv)


def show_examples(examples, predictions, count: int) -> None:
    for example in examples[:count]:
        gold = sorted({answer.text for answer in example.answers}) or ["(no answer)"]
        predicted = predictions.answers[example.qid] or "(no answer)"
        print(f"- {example.question.strip()}\n    gold: {' | '.join(gold)}\n    predicted: {predicted}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from fairseq_ext.hf.qa import answer_questions, check_precision, load_qa_model, model_settings
    from fairseq_ext.outputs import OutputDirectory
    from fairseq_ext.squad import load_squad
    from fairseq_ext.squad.predict import check_batching, csv_destination, print_scores, write_predictions

    check_batching(args)
    squad = load_squad(args.data, training=False)
    print(f"{args.data}: {squad.summary()}")
    examples = squad.examples[:args.max_samples] if args.max_samples is not None else squad.examples
    if not examples:
        raise UserInputError(f"{args.data}: no questions to evaluate")
    if len(examples) < len(squad.examples):
        print(f"evaluating the first {len(examples)} of {len(squad.examples)} questions (--max-samples)")
    output = OutputDirectory(args.out, "evaluate_hf", inputs=[args.model, args.data])
    csv_path = csv_destination(args.csv, output, inputs=[args.model, args.data])
    device = device_of(args.device)
    check_precision(args.precision, device)
    tokenizer, model = load_qa_model(args.model, device)
    settings, described = model_settings(model, args)
    print(f"settings: {described}")
    with output.staged() as staging:
        predictions = answer_questions(examples, tokenizer, model, settings, squad.version_2,
                                       args.batch_size, device, progress=True, max_tokens=args.max_tokens,
                                       precision=args.precision)
        results = write_predictions(staging, examples, predictions, settings, squad.version_2, args.metric,
                                    staging / csv_path if csv_path else None, data_file=args.data)
    if results is None:
        print(f"{args.data} has no answers: predictions written, nothing scored")
    else:
        print_scores(args.metric, results, len(examples))
    show_examples(examples, predictions, args.show_examples)
    print(f"wrote the predictions{' and eval_results.json' if results is not None else ''} to {args.out}")
    return 0


def cli() -> None:
    run_cli(main)
