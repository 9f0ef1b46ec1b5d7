"""scripts/finetune_hf.py: SQuAD fine-tuning of a Hugging Face RoBERTa with transformers' Trainer, on the
project's features and post-processing: the reference to compare fairseq's squad2 fine-tuning with.

    scripts/finetune_hf.py --model hf/roberta-mlm --train train-v2.0.json --valid dev-v2.0.json \\
        --out runs/squad2-hf [--bf16] [--config squad2_tiny] [--epochs 3] [--global-batch 32]

By default the run follows configs/finetuning/squad2_base.yaml as fairseq's launcher does: its recipe's
global batch (48 windows) split over the devices (torchrun's processes, else every visible GPU) and
gradient accumulation, 2 epochs of the training windows in updates, 6% warmup, lr 3e-5, the model's own
dropout; the plan is printed first (--plan FILE writes it as JSON, --check-only stops there). Options
given win over the config.

Writes to OUT the fine-tuned model (config.json with its squad_settings, weights, tokenizer; ready for
convert/evaluate_hf.py and convert/hf_to_fairseq.py), train_log.json (loss and learning rate per update),
plan.json and, with --valid, the prediction files and eval_results.json of evaluate_hf.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import (
    bounded_float,
    bounded_int,
    existing_file,
    positive_float,
    positive_int,
    ratio,
    run_cli,
    seed_int,
)
from fairseq_ext.errors import UserInputError
from fairseq_ext.hf.hub import model_directory

DEFAULT_CONFIG = "squad2_base"  # configs/finetuning/NAME.yaml: the recipe finetune_hf.py follows by default


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from fairseq_ext.hf.qa import add_answer_arguments, add_precision_arguments

    parser = argparse.ArgumentParser(prog="finetune_hf.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--model", required=True, type=Path,
                        help="Hugging Face RoBERTa directory (e.g. fairseq_to_hf.py --out of a masked LM)")
    parser.add_argument("--train", required=True, help="SQuAD v2.0 or v1.1 JSON to train on")
    parser.add_argument("--valid", help="SQuAD JSON to evaluate the fine-tuned model on")
    parser.add_argument("--out", type=Path, help="output directory (needed unless --check-only)")
    parser.add_argument("--force", action="store_true", help="replace an earlier --out of this tool")
    parser.add_argument("--plan", type=Path, metavar="FILE",
                        help="also write the resolved batch and schedule as JSON to FILE (OUT/plan.json "
                             "is always written)")
    parser.add_argument("--check-only", action="store_true",
                        help="print the plan (the training windows counted) and stop, without training")
    training = parser.add_argument_group(
        "training (defaults: --config's; the schedule as fairseq's launcher derives it)")
    training.add_argument("--config", default=DEFAULT_CONFIG,
                          help="fairseq fine-tuning config whose recipe or settings are the defaults: a "
                               "name in configs/finetuning or a YAML path (default: %(default)s; "
                               "squad2_tiny for the tiny CPU model)")
    training.add_argument("--epochs", type=positive_float,
                          help="passes over the training windows (default: the recipe's)")
    training.add_argument("--global-batch", type=positive_int, metavar="WINDOWS",
                          help="windows per update over all devices and accumulation steps (default: the "
                               "recipe's); another than the recipe's keeps its epochs and scales the lr by "
                               "its rule")
    training.add_argument("--per-device-batch", type=positive_int, metavar="WINDOWS",
                          help="the most windows a device takes at once (default: the config's "
                               "dataset.batch_size); smaller where the global batch needs it")
    training.add_argument("--gradient-accumulation", type=positive_int, metavar="STEPS",
                          help="forward/backward passes per update (default: derived from the global batch)")
    training.add_argument("--lr", type=positive_float, help="peak learning rate (default: the recipe's, "
                          "scaled by its rule for another global batch)")
    training.add_argument("--updates", type=positive_int,
                          help="number of updates (default: the recipe's epochs of the training windows); "
                               "the learning rate reaches 0 at the last")
    training.add_argument("--warmup-updates", type=bounded_int(min=0),
                          help="linear warm-up updates (default: the recipe's share of the run)")
    training.add_argument("--weight-decay", type=bounded_float(min=0), help="(default: the config's)")
    training.add_argument("--adam-betas", type=ratio(open_max=True), nargs=2, help="(default: the config's)")
    training.add_argument("--adam-eps", type=positive_float, help="(default: the config's)")
    training.add_argument("--clip-norm", type=bounded_float(min=0),
                          help="gradient norm clipping, 0 for none (default: the config's)")
    training.add_argument("--dropout", type=ratio(open_max=True),
                          help="dropout and attention dropout (default: the config's model.dropout if it "
                               "states one, else the model's own)")
    training.add_argument("--seed", type=seed_int, help="(default: the config's common.seed)")
    add_precision_arguments(training, "training")
    add_answer_arguments(parser, runtime=False)
    args = parser.parse_args(argv)
    if args.out is None and not args.check_only:
        parser.error("the following arguments are required: --out (or --check-only)")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for path in filter(None, (args.train, args.valid)):  # before torch and transformers load: fails at once
        existing_file(path, "SQuAD file")
    model_directory(args.model)
    import torch
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    from fairseq_ext.hf.finetune import ConfigDefaults, TrainingSettings, finetune, training_devices
    from fairseq_ext.hf.qa import answer_questions, check_precision, load_qa_model, model_settings
    from fairseq_ext.outputs import OutputDirectory
    from fairseq_ext.squad import build_features, load_squad
    from fairseq_ext.squad.predict import write_predictions
    from fairseq_ext.tokenizer.hf_adapter import HFTokenizerAdapter

    hf_logging.set_verbosity_error()
    defaults = ConfigDefaults.read(args.config, args.epochs)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    check_precision(args.precision, device)
    train = load_squad(args.train)
    print(f"{args.train}: {train.summary()}")
    valid = load_squad(args.valid, training=False) if args.valid else None
    if valid is not None:
        print(f"{args.valid}: {valid.summary()}")
    output = None if args.check_only else OutputDirectory(
        args.out, "finetune_hf", inputs=[args.model, args.train, args.valid], replace=args.force)
    # seeded before the first load, whose fresh span head is drawn first: the head trained is the second
    # draw of the seed, as in every earlier version (the same seed, the same run)
    set_seed(args.seed if args.seed is not None else defaults.seed)
    tokenizer, base = load_qa_model(args.model, trained_head=False)
    settings, described = model_settings(base, args)
    del base
    print(f"settings: {described}")
    features = build_features(train.examples, HFTokenizerAdapter(tokenizer), **settings.windows(),
                              progress=sys.stderr.isatty())
    if not features:
        raise UserInputError(f"{args.train}: no training windows")
    plan = defaults.plan(vars(args), training_devices(), len(features), args.global_batch)
    plan.announce(print, args.plan)
    if args.check_only:
        return 0
    training = TrainingSettings.of(plan, defaults, weight_decay=args.weight_decay, adam_eps=args.adam_eps,
                                   adam_betas=tuple(args.adam_betas) if args.adam_betas else None,
                                   clip_norm=args.clip_norm, dropout=args.dropout, seed=args.seed,
                                   precision=args.precision)
    print(f"training: {', '.join(f'{k}={v}' for k, v in dataclasses.asdict(training).items())}")
    results = None
    if int(os.environ.get("RANK", "0")) > 0:  # another process of a torchrun job: rank 0 writes OUT
        with tempfile.TemporaryDirectory() as work_dir:
            finetune(args.model, features, settings, training, Path(work_dir), progress=False)
        return 0
    with output.staged() as staging, tempfile.TemporaryDirectory() as work_dir:  # work_dir: the Trainer's
        model, log = finetune(args.model, features, settings, training, Path(work_dir),
                              progress=sys.stderr.isatty())
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        plan.write(staging / "plan.json")
        (staging / "train_log.json").write_text("".join(json.dumps(record) + "\n" for record in log))
        print(f"{len(log)} updates, loss {log[0]['loss']:.3f} -> {log[-1]['loss']:.3f}")
        if valid is not None:
            predictions = answer_questions(valid.examples, tokenizer, model, settings, valid.version_2,
                                           device=device, precision=args.precision)
            results = write_predictions(staging, valid.examples, predictions, settings, valid.version_2)
    if results is not None:
        print(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


def cli() -> None:
    run_cli(main)
