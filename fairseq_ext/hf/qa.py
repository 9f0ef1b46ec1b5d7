"""Extractive QA with a Hugging Face RoBERTa and the project's SQuAD code (no fairseq import): the model
and tokenizer, the settings it carries (``squad_settings`` in config.json, written by the exporter), and
start/end logits per window for the shared post-processing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from fairseq_ext.cli import UserInputError
from fairseq_ext.squad import (
    HFTokenizerAdapter,
    Predictions,
    SquadExample,
    build_features,
    postprocess_predictions,
)
from fairseq_ext.squad.features import PAD
from fairseq_ext.squad.settings import QASettings

SETTINGS_KEY = "squad_settings"  # config.json entry holding the QASettings of an export


def load_qa_model(model_dir: str | Path, device: str = "cpu"):
    """(fast tokenizer, model in eval mode) of a Hugging Face directory, or a one-line error."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserInputError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir))
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"cannot load {model_dir}: {str(err).splitlines()[0]}") from None
    return tokenizer, model.to(device).eval()


def model_settings(model, overrides: dict[str, Optional[float]]) -> tuple[QASettings, dict[str, str]]:
    """The settings to answer with: each from ``overrides`` when not None, else the model's stored ones,
    else the defaults; with where each one comes from ("option", "model" or "default")."""
    stored = getattr(model.config, SETTINGS_KEY, None) or {}
    values, sources = {}, {}
    for item in dataclasses.fields(QASettings):
        if overrides.get(item.name) is not None:
            values[item.name], sources[item.name] = overrides[item.name], "option"
        elif item.name in stored:
            values[item.name], sources[item.name] = stored[item.name], "model"
        else:
            sources[item.name] = "default"
    settings = QASettings(**values)
    limit = model.config.max_position_embeddings - model.config.pad_token_id - 1
    if settings.max_seq_length > limit:
        raise UserInputError(f"max_seq_length {settings.max_seq_length} exceeds the model's {limit} "
                             "positions (--max-seq-length)")
    return settings, sources


def describe_settings(settings: QASettings, sources: dict[str, str]) -> str:
    """One line: every setting, and where the "no answer" threshold comes from."""
    origin = {"option": "--null-score-diff-threshold", "model": "stored in the model",
              "default": "default: the model stores none"}[sources["null_score_diff_threshold"]]
    values = ", ".join(f"{name}={value}" for name, value in dataclasses.asdict(settings).items())
    return f"{values} (null threshold: {origin})"


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


def answer_questions(examples: Sequence[SquadExample], tokenizer, model, settings: QASettings,
                     version_2: bool, batch_size: int = 32, device: str = "cpu",
                     progress: bool = False) -> Predictions:
    """The shared SQuAD pipeline (windows -> logits -> run_qa post-processing) with a HF model."""
    features = build_features(examples, HFTokenizerAdapter(tokenizer), max_seq_length=settings.max_seq_length,
                              doc_stride=settings.doc_stride, max_query_length=settings.max_query_length,
                              progress=progress)
    starts, ends = window_logits(model, [feature.input_ids for feature in features], batch_size, device,
                                 progress)
    return postprocess_predictions(examples, features, starts, ends, version_2_with_negative=version_2,
                                   n_best_size=settings.n_best_size,
                                   max_answer_length=settings.max_answer_length,
                                   null_score_diff_threshold=settings.null_score_diff_threshold)


def add_answer_arguments(parser, runtime: bool = True) -> None:
    """Windowing and post-processing options (unset: the model's stored settings, else the defaults), and
    with ``runtime`` the prediction batch size and device."""
    defaults = QASettings()
    group = parser.add_argument_group("windows and answers (default: the settings stored in the model, "
                                      "else these defaults)")
    group.add_argument("--max-seq-length", type=int, help=f"tokens per window ({defaults.max_seq_length})")
    group.add_argument("--doc-stride", type=int,
                       help=f"overlap of context windows in tokens ({defaults.doc_stride})")
    group.add_argument("--max-query-length", type=int,
                       help=f"question tokens kept ({defaults.max_query_length})")
    group.add_argument("--n-best-size", type=int,
                       help=f"start/end candidates per window ({defaults.n_best_size})")
    group.add_argument("--max-answer-length", type=int,
                       help=f"longest answer in tokens ({defaults.max_answer_length})")
    group.add_argument("--null-score-diff-threshold", type=float,
                       help='answer "" when null score - best span score exceeds this, SQuAD 2.0 '
                            f"({defaults.null_score_diff_threshold})")
    if not runtime:
        return
    group.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (%(default)s)")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="torch device (default: %(default)s)")


def settings_overrides(args) -> dict[str, Optional[float]]:
    """The answer options of parsed ``args`` (None where not given)."""
    return {item.name: getattr(args, item.name) for item in dataclasses.fields(QASettings)}


def write_predictions(out: Path, examples: Sequence[SquadExample], predictions: Predictions, version_2: bool,
                      null_threshold: float) -> tuple[list[str], Optional[dict]]:
    """predictions.json, nbest_predictions.json, null_odds.json (SQuAD 2.0) and, when the questions have
    gold answers, eval_results.json (official metric); returns the names written and the results."""
    import json

    from fairseq_ext.squad import squad_evaluate

    def write(name: str, value) -> None:
        (out / name).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(name)

    out.mkdir(parents=True, exist_ok=True)
    written, results = [], None
    write("predictions.json", predictions.answers)
    write("nbest_predictions.json", predictions.nbest)
    if version_2:
        write("null_odds.json", predictions.null_odds)
    if any(example.answers or example.is_impossible for example in examples):
        # as scripts/predict_squad2.py: null odds thresholded where the answers were, so "exact" and
        # "f1" score predictions.json as written and best_f1_thresh suggests a better threshold
        results = squad_evaluate(examples, predictions.answers, na_probs=predictions.null_odds if version_2
                                 else None, na_prob_thresh=null_threshold, version_2=version_2)
        write("eval_results.json", results)
    return written, results
