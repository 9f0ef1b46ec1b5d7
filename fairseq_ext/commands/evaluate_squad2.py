"""SQuAD 2.0 evaluation with the arguments and output of the official evaluate-v2.0.py.

Prints the metric JSON (exact, f1, total, HasAns_*, NoAns_*, and best_exact/best_f1 with their
thresholds when --na-prob-file is given) and writes it to --out-file. The best-threshold search scores each
question's best non-null answer (from --nbest-file, predict_squad2's nbest_predictions.json) as the
official script intends; without it, the predictions as given (answers already cut at a threshold: the
search then cannot find a higher one). SQuAD v1.1 data gives the v1.1
keys (exact_match, f1). --metric cmrc scores Chinese answers as the official CMRC 2018 script
(cmrc2018_evaluate.py) does and prints its output: AVERAGE, F1, EM (as "%.3f" strings), TOTAL, SKIP
(questions without a prediction, scored 0) and FILE.

Below it, on stderr (stdout stays the official JSON), what the score means: the score of answering nothing
on this data (SQuAD 2.0: the share of unanswerable questions), and a warning when the predictions answer
(almost) nothing or no answerable question gets a word right.
"""

from __future__ import annotations

import argparse
import math
import numbers
import sys
from typing import Optional, Sequence

from fairseq_ext.cli import finite_float, run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputFiles, json_text
from fairseq_ext.squad import load_squad
from fairseq_ext.squad.data import read_json
from fairseq_ext.squad.metric import METRICS, evaluate, no_answer_baseline, score_notes


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_file", metavar="DATA_JSON",
                        help="SQuAD data with gold answers (e.g. dev-v2.0.json)")
    parser.add_argument("pred_file", metavar="PRED_JSON", help="predictions: question id -> answer text")
    parser.add_argument("--out-file", "-o", metavar="F", help="also write the metrics JSON to this file")
    parser.add_argument("--metric", choices=METRICS, default="squad",
                        help="squad (official SQuAD v2.0/v1.1, default) or cmrc (CMRC 2018: Chinese, "
                             "character-level F1 over a mixed segmentation, EM without punctuation)")
    parser.add_argument("--na-prob-file", "-n", metavar="F",
                        help="question id -> no-answer probability or null odds (predict_squad2's "
                             "null_odds.json); adds the best-threshold search")
    parser.add_argument("--nbest-file", metavar="F",
                        help="question id -> n-best candidates, best first (predict_squad2's "
                             "nbest_predictions.json): the best-threshold search scores the best non-null "
                             "one of each question")
    parser.add_argument("--na-prob-thresh", "-t", type=finite_float, default=1.0, metavar="T",
                        help='predict "" where the no-answer probability exceeds T (default: 1.0)')
    return parser.parse_args(argv)


def read_mapping(path: str, what: str, value_type: type) -> dict:
    """A JSON object of question id -> value_type, or a one-line error naming the first bad entry."""
    mapping = read_json(path, what)
    if not isinstance(mapping, dict):
        raise UserInputError(f"{path}: expected a JSON object of question id -> {what} entries")
    for qid, value in mapping.items():
        if not isinstance(value, value_type) or isinstance(value, bool):
            raise UserInputError(f"{path}: question {qid}: expected {value_type.__name__}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):  # json reads NaN, Infinity
            raise UserInputError(f"{path}: question {qid}: {value} is not a number")
    return mapping


def best_non_null(nbest: dict) -> dict[str, str]:
    """qid -> the text of its first non-empty candidate (questions with none are left out)."""
    non_null = {}
    for qid, candidates in nbest.items():
        texts = [c.get("text") if isinstance(c, dict) else None for c in candidates]
        if not all(isinstance(text, str) for text in texts):
            raise UserInputError(f"n-best candidates of question {qid}: expected objects with a \"text\"")
        first = next((text for text in texts if text), None)
        if first is not None:
            non_null[qid] = first
    return non_null


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    data = load_squad(args.data_file, align_answers=False)  # the metric reads answer texts only
    if not data.examples:  # the official script divides by the question count
        raise UserInputError(f"{args.data_file}: no questions to score")
    predictions = read_mapping(args.pred_file, "predictions", str)
    na_probs = None
    if args.na_prob_file:
        na_probs = read_mapping(args.na_prob_file, "no-answer probabilities", numbers.Real)
    if args.metric == "cmrc" and na_probs is not None:
        raise UserInputError("--na-prob-file applies to --metric squad only")
    if args.nbest_file and na_probs is None:
        raise UserInputError("--nbest-file serves the best-threshold search: give --na-prob-file too")
    non_null = None
    if args.nbest_file:
        non_null = best_non_null(read_mapping(args.nbest_file, "n-best candidates", list))
    inputs = [args.data_file, args.pred_file, args.na_prob_file, args.nbest_file]
    out_file = OutputFiles([args.out_file], inputs, "--out-file") if args.out_file else None
    result = evaluate(args.metric, data, predictions, na_probs=na_probs, na_prob_thresh=args.na_prob_thresh,
                      non_null=non_null)
    answered = sum(bool(predictions.get(example.qid)) and (na_probs is None or
                                                         na_probs.get(example.qid, 0) <= args.na_prob_thresh)
                   for example in data.examples)
    notes = score_notes(args.metric, result, no_answer_baseline(args.metric, data), answered,
                        len(data.examples))
    if args.metric == "cmrc":  # the official script's formatting
        result = {**{key: f"{result[key]:.3f}" for key in ("AVERAGE", "F1", "EM")},
                  "TOTAL": result["TOTAL"], "SKIP": result["SKIP"], "FILE": args.pred_file}
    print(json_text(result), end="")
    if out_file is not None:
        with out_file.open("w", encoding="utf-8") as (stream,):
            stream.write(json_text(result))
    for line in notes:
        print(line, file=sys.stderr)
    return 0


def cli() -> None:
    run_cli(main)
