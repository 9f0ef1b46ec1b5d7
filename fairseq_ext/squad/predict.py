"""The one prediction loop and output writer, shared by the fairseq side (predict_squad2) and the Hugging
Face side (evaluate_hf, predict_hf): windows -> logits (any model, through ``forward``) -> run_qa
post-processing -> files. No torch here: the caller's ``forward`` runs its model."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from fairseq_ext.cli import positive_int
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory, OutputFiles, PathLike, json_text
from fairseq_ext.squad.data import SquadExample, file_identity
from fairseq_ext.squad.features import PAD, QAFeature
from fairseq_ext.squad.metric import evaluate, no_answer_baseline, score_notes
from fairseq_ext.squad.postprocess import Predictions, postprocess_predictions
from fairseq_ext.squad.settings import QASettings

# forward(tokens) -> (start logits, end logits): tokens int64 (batch, length) right-padded with PAD;
# the logits float32 numpy arrays of the same shape.
Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """``--batch-size``, ``--max-tokens``, ``--device``: how the windows go through the model, on both
    sides (batching: check_batching; the device: fairseq_ext.cli.device_of)."""
    parser.add_argument("--batch-size", type=positive_int,
                        help="windows per forward pass (default: 32 without --max-tokens, else no limit)")
    parser.add_argument("--max-tokens", type=positive_int, metavar="N",
                        help="at most N tokens per forward pass, counted with the padding to the batch's "
                             "longest window (windows are grouped by length)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")


PREDICTION_FILES = ("predictions.json", "nbest_predictions.json", "null_odds.json", "eval_results.json")


def length_batches(lengths: np.ndarray, batch_size: Optional[int] = 32,
                   max_tokens: Optional[int] = None) -> list[np.ndarray]:
    """Window indices grouped by length (sorted, stable) into batches of at most ``batch_size`` windows
    and, with ``max_tokens``, at most that many tokens once padded to the batch's longest window (a
    window longer than ``max_tokens`` gets a batch of its own), as fairseq's ``dataset.max_tokens``."""
    if batch_size is None and max_tokens is None:
        raise ValueError("length_batches: give batch_size, max_tokens or both")
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (batch_size is None or end - start < batch_size) and \
                (max_tokens is None or (end - start + 1) * lengths[order[end]] <= max_tokens):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def check_batching(args) -> None:
    """Neither --batch-size nor --max-tokens given (their parsers refuse values below 1): 32 windows a
    batch."""
    if args.batch_size is None and args.max_tokens is None:
        args.batch_size = 32


def window_logits(features: Sequence[QAFeature], forward: Forward, batch_size: Optional[int] = 32,
                  progress: bool = False, max_tokens: Optional[int] = None,
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start and end logits of every window (one float32 array per window, its own length), in batches
    of ``length_batches``."""
    from tqdm import tqdm

    lengths = np.array([len(feature.input_ids) for feature in features])
    starts: list = [None] * len(features)
    ends: list = [None] * len(features)
    batches = length_batches(lengths, batch_size, max_tokens)
    for batch in tqdm(batches, desc="predict", unit="batch", disable=not progress):
        tokens = np.full((len(batch), lengths[batch].max()), PAD, dtype=np.int64)
        for row, window in enumerate(batch):
            tokens[row, :lengths[window]] = features[window].input_ids
        batch_starts, batch_ends = forward(tokens)
        for row, window in enumerate(batch):
            starts[window] = batch_starts[row, :lengths[window]]
            ends[window] = batch_ends[row, :lengths[window]]
    return starts, ends


def answer_questions(examples: Sequence[SquadExample], features: Sequence[QAFeature], forward: Forward,
                     settings: QASettings, version_2: bool, batch_size: Optional[int] = 32,
                     progress: bool = False, max_tokens: Optional[int] = None) -> Predictions:
    starts, ends = window_logits(features, forward, batch_size, progress, max_tokens)
    return postprocess_predictions(examples, features, starts, ends, version_2_with_negative=version_2,
                                   **settings.answers())


def write_predictions(out: Path, examples: Sequence[SquadExample], predictions: Predictions,
                      settings: QASettings, version_2: bool, metric: str = "squad",
                      csv_path: Optional[Path] = None,
                      data_file: Optional[PathLike] = None) -> Optional[dict]:
    """Writes into the directory ``out`` (an OutputDirectory's staging) predictions.json,
    nbest_predictions.json, null_odds.json (SQuAD 2.0) and, when the questions have gold answers,
    eval_results.json (``metric``: the official SQuAD metric, the null odds as no-answer
    probabilities thresholded where the answers were, so that "exact"/"f1" score predictions.json as
    written and best_f1_thresh suggests a better threshold; or the CMRC 2018 metric). ``csv_path``: also
    ``ID,Answer`` rows in question order. eval_results.json also says what the score means:
    ``no_answer_baseline`` (the score of answering nothing, metric.no_answer_baseline), ``answered``
    (questions given a non-empty answer) and ``data`` (data.file_identity of ``data_file``: the model card
    names the dataset from it). Returns the scores, or None for unlabelled questions."""
    out = Path(out)
    outputs = {PREDICTION_FILES[0]: predictions.answers, PREDICTION_FILES[1]: predictions.nbest}
    if version_2:
        outputs[PREDICTION_FILES[2]] = predictions.null_odds
    results = None
    if all(example.labelled for example in examples):
        results = evaluate(metric, examples, predictions.answers,
                           na_probs=predictions.null_odds if version_2 else None,
                           na_prob_thresh=settings.null_score_diff_threshold, version_2=version_2,
                           non_null=predictions.non_null)
        results["no_answer_baseline"] = no_answer_baseline(metric, examples, version_2=version_2)
        results["answered"] = sum(bool(predictions.answers[example.qid]) for example in examples)
        if data_file is not None:
            results["data"] = file_identity(data_file)
        outputs[PREDICTION_FILES[3]] = results
    for name, content in outputs.items():
        (out / name).write_text(json_text(content, name), encoding="utf-8")
    if csv_path is not None:
        write_csv(csv_path, examples, predictions.answers)
    return results


def print_scores(metric: str, results: dict, questions: int) -> None:
    """eval_results.json's content (of ``questions`` questions), then what it means (metric.score_notes)."""
    print(json_text(results), end="")
    for line in score_notes(metric, results, results["no_answer_baseline"], results["answered"], questions):
        print(line)


def csv_destination(csv_path: Optional[PathLike], output: OutputDirectory,
                    inputs: Sequence[Optional[PathLike]]) -> Optional[Path]:
    """--csv checked before any work. Inside the output directory it is written into the staging with the
    other files (so it is there once the directory is in place): its path relative to the output
    directory; elsewhere, its own absolute path, written staged too. Either way ``staging / result`` is
    where write_predictions writes it."""
    if csv_path is None:
        return None
    inside = output.relative_path(csv_path)
    if inside == Path("."):
        raise UserInputError(f"--csv {csv_path} is the output directory: give a file name")
    if inside is not None and inside.as_posix() in PREDICTION_FILES:
        raise UserInputError(f"--csv {csv_path} would replace the {inside} the command writes: choose "
                             "another name")
    OutputFiles([csv_path], inputs=inputs, what="--csv")  # checked now
    return inside if inside is not None else Path(csv_path).resolve()


def write_csv(path: Path, examples: Sequence[SquadExample], answers: dict[str, str]) -> None:
    """``ID,Answer`` rows (a header, then one row per question in order), as course leaderboards take them."""
    with OutputFiles([path]).open("w", encoding="utf-8") as (f,):
        writer = csv.writer(f)
        writer.writerow(["ID", "Answer"])
        writer.writerows([example.qid, answers[example.qid]] for example in examples)
