"""Answers the questions of a SQuAD file with a fine-tuned roberta_span_qa checkpoint.

    scripts/predict_squad2.py --checkpoint checkpoints/squad2_base/checkpoint_best.pt \\
        --data dev-v2.0.json --tokenizer gpt2_bpe --out predictions/

writes into OUT: predictions.json (question id -> answer, "" for no answer), null_odds.json (SQuAD 2.0:
null score - best span score), nbest_predictions.json, and eval_results.json (--metric squad: the official
SQuAD metric, with the null odds as no-answer probabilities; --metric cmrc: the CMRC 2018 metric for
Chinese) when the data has answers. A file without answers (a test set, see scripts/to_squad.py) is only
answered; --csv also writes ID,Answer rows. Windows and post-processing follow the checkpoint's task
settings unless overridden; --tokenizer must be the one the checkpoint's data was prepared with. OUT
is checked before the model runs and replaced as a whole (see fairseq_ext/outputs.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fairseq_ext.cli import device_of, existing_file, run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.squad import build_features, load_squad
from fairseq_ext.squad.metric import METRICS
from fairseq_ext.squad.predict import (
    add_runtime_arguments,
    answer_questions,
    check_batching,
    csv_destination,
    print_scores,
    write_predictions,
)
from fairseq_ext.squad.settings import QASettings
from fairseq_ext.tokenizer import add_tokenizer_argument, check_record, find_tokenizer_dir, load_tokenizer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="fine-tuned checkpoint (task squad2)")
    parser.add_argument("--data", required=True, metavar="JSON", help="SQuAD file (v2.0 or v1.1)")
    add_tokenizer_argument(parser, ", with dict.txt")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--metric", choices=METRICS, default="squad",
                        help="eval_results.json's metric: squad (official SQuAD v1.1/v2.0, default) or cmrc "
                             "(CMRC 2018: Chinese, mixed segmentation)")
    parser.add_argument("--csv", metavar="CSV", help="also write the answers as ID,Answer rows to this file")
    add_runtime_arguments(parser)
    parser.add_argument("--fp16", action="store_true", help="run the model in half precision (GPU)")
    QASettings.add_arguments(parser, default_from="the checkpoint's task settings")
    return parser.parse_args(argv)


def load_model(checkpoint: Path, tokenizer_dir: Path, device: str, fp16: bool):
    """The checkpoint's model in eval mode and its task, whose dictionary is BPE_DIR/dict.txt + <mask>."""
    import fairseq_ext.plugin  # noqa: F401  (the squad2 task and roberta_span_qa model)
    from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint, model_with_dictionary

    state = load_checkpoint(checkpoint)
    info = checkpoint_info(state)
    if info.task_name != "squad2" or state.get("cfg") is None:
        raise UserInputError(f"{checkpoint} is not a SQuAD checkpoint (task {info.task_name!r}): fine-tune "
                             "it with scripts/finetune_squad2.sh first")
    trained_on = state["cfg"]["task"].get("data")
    if trained_on and Path(trained_on).is_dir():
        check_record(trained_on, tokenizer_dir, f"{checkpoint}'s fine-tuning data {trained_on}")
    model, cfg, task = model_with_dictionary(checkpoint, state, tokenizer_dir)
    model = model.to(device)
    return (model.half() if fp16 else model), cfg.task, task


def fairseq_forward(model, device: str):
    """The shared prediction loop's forward for a roberta_span_qa model."""
    import torch

    @torch.no_grad()
    def forward(tokens):
        starts, ends = model(torch.from_numpy(tokens).to(device))
        return starts.float().cpu().numpy(), ends.float().cpu().numpy()

    return forward


def main(argv=None):
    args = parse_args(argv)
    check_batching(args)
    checkpoint = existing_file(args.checkpoint, "checkpoint")
    tokenizer_dir = find_tokenizer_dir(args.tokenizer, need_dict=True)
    squad = load_squad(args.data, training=False)
    print(f"{args.data}: {squad.summary()}")
    if not squad.examples:
        raise UserInputError(f"{args.data}: no usable questions")
    output = OutputDirectory(args.out, "predict_squad2", inputs=[checkpoint, args.data, tokenizer_dir])
    csv_path = csv_destination(args.csv, output, inputs=[checkpoint, args.data, tokenizer_dir])
    device = device_of(args.device)
    model, task_cfg, task = load_model(checkpoint, tokenizer_dir, device, args.fp16)
    settings = QASettings.from_object(args, base=QASettings.from_object(task_cfg))
    settings.check_fits(model.max_positions(), name="--max-seq-length")

    dictionary = task.source_dictionary
    tokenizer = load_tokenizer(tokenizer_dir).to_dictionary(dictionary.symbols, dictionary.unk())
    with output.staged() as staging:
        features = build_features(squad.examples, tokenizer, **settings.windows(), progress=True)
        predictions = answer_questions(squad.examples, features, fairseq_forward(model, device), settings,
                                       squad.version_2, args.batch_size, progress=True,
                                       max_tokens=args.max_tokens)
        results = write_predictions(staging, squad.examples, predictions, settings, squad.version_2,
                                    args.metric, staging / csv_path if csv_path else None,
                                    data_file=args.data)
    print(f"{len(features)} windows of {len(squad.examples)} questions -> {args.out}"
          + (f", {args.csv}" if args.csv else ""))
    if results is None:
        print(f"{args.data} has no answers: predictions written, nothing scored")
    else:
        print_scores(args.metric, results, len(squad.examples))


def cli() -> None:
    run_cli(main)
