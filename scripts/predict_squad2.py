#!/usr/bin/env python
"""Answers the questions of a SQuAD file with a fine-tuned roberta_span_qa checkpoint.

    scripts/predict_squad2.py --checkpoint checkpoints/squad2_base/checkpoint_best.pt \\
        --data dev-v2.0.json --gpt2-bpe gpt2_bpe --out predictions/

writes into OUT: predictions.json (question id -> answer, "" for no answer), null_odds.json (SQuAD 2.0:
null score - best span score), nbest_predictions.json, and eval_results.json (the official SQuAD metric,
with the null odds as no-answer probabilities) when the data has answers. Windows and post-processing
follow the checkpoint's task settings unless overridden.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fairseq_ext.bpe import DictionaryBpe, Gpt2Bpe, resolve_gpt2_bpe_dir
from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint
from fairseq_ext.cli import UserInputError, existing_file, run_cli
from fairseq_ext.squad import build_features, load_squad, postprocess_predictions, squad_evaluate
from fairseq_ext.tasks.squad2_data import FeatureArrays, SquadFeatureDataset

TASK_SETTINGS = ("max_seq_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length",
                 "null_score_diff_threshold")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="fine-tuned checkpoint (task squad2)")
    parser.add_argument("--data", required=True, metavar="JSON", help="SQuAD file (v2.0 or v1.1)")
    parser.add_argument("--gpt2-bpe", metavar="DIR",
                        help="directory with encoder.json, vocab.bpe, dict.txt (default: $GPT2_BPE_DIR)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default: 32)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--fp16", action="store_true", help="run the model in half precision (GPU)")
    for name in TASK_SETTINGS:
        kind = float if name == "null_score_diff_threshold" else int
        parser.add_argument("--" + name.replace("_", "-"), type=kind,
                            help=f"default: the checkpoint's task.{name}")
    return parser.parse_args(argv)


def load_model(checkpoint: Path, bpe_dir: Path, device: str, fp16: bool):
    """The checkpoint's model in eval mode and its task, whose dictionary is BPE_DIR/dict.txt + <mask>."""
    from fairseq import checkpoint_utils, tasks
    from omegaconf import OmegaConf

    state = load_checkpoint(checkpoint)
    info = checkpoint_info(state)
    if info.task_name != "squad2" or state.get("cfg") is None:
        raise UserInputError(f"{checkpoint} is not a SQuAD checkpoint (task {info.task_name!r}): fine-tune "
                             "it with scripts/finetune_squad2.sh first")
    state["cfg"] = OmegaConf.create(state["cfg"])
    state["cfg"].task.data = str(bpe_dir)  # the task only needs dict.txt from it
    task = tasks.setup_task(state["cfg"].task)
    if info.embedding_rows != len(task.source_dictionary):
        raise UserInputError(f"checkpoint {checkpoint} has {info.embedding_rows} embedding rows but "
                             f"{bpe_dir / 'dict.txt'} + <mask> gives {len(task.source_dictionary)} symbols: "
                             "use the dictionary the model was trained with")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], task=task,
                                                                      state=state)
    model = models[0].eval().to(device)
    return (model.half() if fp16 else model), cfg.task, task


@torch.no_grad()
def predict_logits(model, dataset: SquadFeatureDataset, batch_size: int, device: str):
    """Start and end logits of every window (float32 numpy arrays, one per window)."""
    start_logits, end_logits = [None] * len(dataset), [None] * len(dataset)
    order = np.argsort(dataset.sizes, kind="stable")  # similar lengths together: little padding
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="predict", unit="batch"):
        sample = dataset.collater(batch.tolist())
        starts, ends = model(sample["net_input"]["src_tokens"].to(device))
        starts, ends = starts.float().cpu().numpy(), ends.float().cpu().numpy()
        for row, (window, length) in enumerate(zip(batch, sample["net_input"]["src_lengths"].tolist())):
            start_logits[window], end_logits[window] = starts[row, :length], ends[row, :length]
    return start_logits, end_logits


def main(argv=None):
    args = parse_args(argv)
    checkpoint = existing_file(args.checkpoint, "checkpoint")
    bpe_dir = resolve_gpt2_bpe_dir(args.gpt2_bpe, need_dict=True)
    squad = load_squad(args.data)
    print(f"{args.data}: {squad.summary()}")
    if not squad.examples:
        raise UserInputError(f"{args.data}: no usable questions")
    model, task_cfg, task = load_model(checkpoint, bpe_dir, args.device, args.fp16)
    settings = {name: getattr(task_cfg, name) if getattr(args, name) is None else getattr(args, name)
                for name in TASK_SETTINGS}
    if settings["max_seq_length"] > model.max_positions():
        raise UserInputError(f"--max-seq-length {settings['max_seq_length']} exceeds the model's "
                             f"{model.max_positions()} positions")

    dictionary = task.source_dictionary
    tokenizer = DictionaryBpe(Gpt2Bpe.from_dir(bpe_dir), dictionary.symbols, unk_index=dictionary.unk())
    windows = {name: settings[name] for name in ("max_seq_length", "doc_stride", "max_query_length")}
    features = build_features(squad.examples, tokenizer, **windows, progress=True)
    dataset = SquadFeatureDataset(FeatureArrays.from_features(features), dictionary.pad())
    start_logits, end_logits = predict_logits(model, dataset, args.batch_size, args.device)
    predictions = postprocess_predictions(
        squad.examples, features, start_logits, end_logits, version_2_with_negative=squad.version_2,
        n_best_size=settings["n_best_size"], max_answer_length=settings["max_answer_length"],
        null_score_diff_threshold=settings["null_score_diff_threshold"])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    outputs = {"predictions.json": predictions.answers, "nbest_predictions.json": predictions.nbest}
    if squad.version_2:
        outputs["null_odds.json"] = predictions.null_odds
    # null odds as no-answer probabilities, thresholded where the predictions were: the official "exact" and
    # "f1" then score predictions.json as written, and best_f1_thresh suggests a null score threshold
    results = squad_evaluate(squad, predictions.answers,
                             na_probs=predictions.null_odds if squad.version_2 else None,
                             na_prob_thresh=settings["null_score_diff_threshold"])
    outputs["eval_results.json"] = results
    for name, content in outputs.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n")
    print(f"{len(features)} windows of {len(squad.examples)} questions -> {out}")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    run_cli(main)
