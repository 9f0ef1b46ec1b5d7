"""SQuAD v2 (or v1.1) evaluation of an exported model with transformers only (no fairseq).

    python convert/evaluate_hf.py --model hf/roberta-squad2 --data dev-v2.0.json --out runs/eval-hf

Loads the model with ``AutoTokenizer`` / ``AutoModelForQuestionAnswering`` and runs the project's shared
SQuAD code (fairseq_ext.squad: the same windows, post-processing and official metric as
scripts/predict_squad2.py), so its predictions are those of the fairseq model. Writes predictions.json
(question id -> answer, "" for no answer), null_odds.json (SQuAD 2.0), nbest_predictions.json and, when
the data has gold answers, eval_results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from fairseq_ext.cli import UserInputError, run_cli
from fairseq_ext.squad import (
    HFTokenizerAdapter,
    Predictions,
    SquadExample,
    build_features,
    load_squad,
    postprocess_predictions,
    squad_evaluate,
)
from fairseq_ext.squad.features import PAD

# The squad2 task's defaults (run_qa's); an exported span-QA model carries its training values in
# config.json ("squad_settings", written by fairseq_to_hf.py), which take precedence over these.
DEFAULT_SETTINGS = {"max_seq_length": 384, "doc_stride": 128, "max_query_length": 64, "n_best_size": 20,
                    "max_answer_length": 30, "null_score_diff_threshold": 0.0}


def add_answer_arguments(parser: argparse.ArgumentParser) -> None:
    """Windowing and post-processing options; unset ones come from the model or DEFAULT_SETTINGS."""
    group = parser.add_argument_group("windows and answers (default: the model's squad_settings, else "
                                      "the squad2 task's defaults)")
    group.add_argument("--max-seq-length", type=int, help="tokens per window (384)")
    group.add_argument("--doc-stride", type=int, help="overlap of context windows in tokens (128)")
    group.add_argument("--max-query-length", type=int, help="question tokens kept (64)")
    group.add_argument("--n-best-size", type=int, help="start/end candidates per window (20)")
    group.add_argument("--max-answer-length", type=int, help="longest answer in tokens (30)")
    group.add_argument("--null-score-diff-threshold", type=float,
                       help='answer "" when null score - best span score exceeds this, SQuAD 2.0 (0.0)')
    group.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (%(default)s)")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="torch device (default: %(default)s)")


def load_qa_model(model_dir: str | Path, device: str = "cpu"):
    """(fast tokenizer, model in eval mode) of a Hugging Face directory, or a one-line error."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserInputError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir))
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"cannot load {model_dir}: {str(err).splitlines()[0]}") from None
    return tokenizer, model.to(device).eval()


def resolve_settings(args: argparse.Namespace, model) -> str:
    """Fills the unset answer options of ``args``; returns them as one line for the user."""
    recorded = getattr(model.config, "squad_settings", None) or {}
    for name, default in DEFAULT_SETTINGS.items():
        if getattr(args, name) is None:
            setattr(args, name, recorded.get(name, default))
    limit = model.config.max_position_embeddings - model.config.pad_token_id - 1
    if args.max_seq_length > limit:
        raise UserInputError(f"max_seq_length {args.max_seq_length} exceeds the model's {limit} positions "
                             "(--max-seq-length)")
    return ", ".join(f"{name}={getattr(args, name)}" for name in DEFAULT_SETTINGS)


def window_logits(model, windows: Sequence[Sequence[int]], batch_size: int, device: str,
                  progress: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start and end logits of each window (right-padded batches; HF positions skip <pad> like fairseq)."""
    starts, ends = [], []
    with torch.no_grad():
        batches = range(0, len(windows), batch_size)
        for begin in tqdm(batches, desc="predict", unit="batch", disable=not progress):
            rows = windows[begin:begin + batch_size]
            input_ids = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
            for index, row in enumerate(rows):
                input_ids[index, :len(row)] = torch.tensor(row)
            output = model(input_ids=input_ids.to(device), attention_mask=input_ids.ne(PAD).to(device))
            for index, row in enumerate(rows):
                starts.append(output.start_logits[index, :len(row)].float().cpu().numpy())
                ends.append(output.end_logits[index, :len(row)].float().cpu().numpy())
    return starts, ends


def answer_questions(examples: Sequence[SquadExample], tokenizer, model, args: argparse.Namespace,
                     version_2: bool, progress: bool = False) -> Predictions:
    """The shared SQuAD pipeline (windows -> logits -> run_qa post-processing) with a HF model."""
    features = build_features(examples, HFTokenizerAdapter(tokenizer), max_seq_length=args.max_seq_length,
                              doc_stride=args.doc_stride, max_query_length=args.max_query_length,
                              progress=progress)
    starts, ends = window_logits(model, [feature.input_ids for feature in features], args.batch_size,
                                 args.device, progress)
    return postprocess_predictions(examples, features, starts, ends, version_2_with_negative=version_2,
                                   n_best_size=args.n_best_size, max_answer_length=args.max_answer_length,
                                   null_score_diff_threshold=args.null_score_diff_threshold)


def show_examples(examples: Sequence[SquadExample], predictions: Predictions, count: int) -> None:
    for example in examples[:count]:
        gold = sorted({answer.text for answer in example.answers}) or ["(no answer)"]
        predicted = predictions.answers[example.qid] or "(no answer)"
        print(f"- {example.question.strip()}\n    gold: {' | '.join(gold)}\n    predicted: {predicted}")


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate an exported RobertaForQuestionAnswering on SQuAD "
                                                 "JSON with transformers and the project's SQuAD code.")
    parser.add_argument("--model", required=True, help="Hugging Face model directory (fairseq_to_hf --out)")
    parser.add_argument("--data", required=True, help="SQuAD v2.0 or v1.1 JSON")
    parser.add_argument("--out", required=True, type=Path, help="directory for the prediction files")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate the first N questions only")
    parser.add_argument("--show-examples", type=int, default=0, metavar="K",
                        help="print K questions with gold and predicted answers")
    add_answer_arguments(parser)
    args = parser.parse_args(argv)

    squad = load_squad(args.data)
    print(f"{args.data}: {squad.summary()}")
    examples = squad.examples[:args.max_samples] if args.max_samples is not None else squad.examples
    if not examples:
        raise UserInputError(f"{args.data}: no questions to evaluate")
    if len(examples) < len(squad.examples):
        print(f"evaluating the first {len(examples)} of {len(squad.examples)} questions (--max-samples)")
    tokenizer, model = load_qa_model(args.model, args.device)
    print(f"settings: {resolve_settings(args, model)}")
    predictions = answer_questions(examples, tokenizer, model, args, squad.version_2, progress=True)

    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "predictions.json", predictions.answers)
    write_json(args.out / "nbest_predictions.json", predictions.nbest)
    written = ["predictions.json", "nbest_predictions.json"]
    if squad.version_2:
        write_json(args.out / "null_odds.json", predictions.null_odds)
        written.append("null_odds.json")
    if any(example.answers or example.is_impossible for example in examples):
        # as scripts/predict_squad2.py: null odds thresholded where the answers were, so "exact" and
        # "f1" score predictions.json as written and best_f1_thresh suggests a better threshold
        results = squad_evaluate(examples, predictions.answers,
                                 na_probs=predictions.null_odds if squad.version_2 else None,
                                 na_prob_thresh=args.null_score_diff_threshold, version_2=squad.version_2)
        write_json(args.out / "eval_results.json", results)
        written.append("eval_results.json")
        print(json.dumps(results, indent=2))
    show_examples(examples, predictions, args.show_examples)
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
