"""scripts/finetune_hf.py: SQuAD fine-tuning of a Hugging Face RoBERTa with transformers' Trainer, on the
project's features and post-processing: the reference to compare fairseq's squad2 fine-tuning with.

    scripts/finetune_hf.py --model hf/tiny --train train.json --valid dev.json --out runs/squad2-hf \\
        --lr 1e-3 --batch-size 16 --updates 100 --warmup-updates 6

Writes to OUT the fine-tuned model (config.json with its squad_settings, weights, tokenizer; ready for
convert/evaluate_hf.py and convert/hf_to_fairseq.py), train_log.json (loss and learning rate per update)
and, with --valid, the prediction files and eval_results.json of evaluate_hf.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import bounded_float, bounded_int, positive_int, ratio, run_cli, seed_int


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from fairseq_ext.hf.finetune import DEFAULT_CONFIG, TrainingSettings
    from fairseq_ext.hf.qa import add_answer_arguments

    # --config first: the other defaults are read from it
    config_parser = argparse.ArgumentParser(add_help=False)
    config_parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    config = config_parser.parse_known_args(argv)[0].config
    defaults = TrainingSettings.from_config(config)
    parser = argparse.ArgumentParser(prog="finetune_hf.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path,
                        help="Hugging Face RoBERTa directory (e.g. fairseq_to_hf.py --out of a masked LM)")
    parser.add_argument("--train", required=True, help="SQuAD v2.0 or v1.1 JSON to train on")
    parser.add_argument("--valid", help="SQuAD JSON to evaluate the fine-tuned model on")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--force", action="store_true", help="replace an earlier --out of this tool")
    training = parser.add_argument_group(f"training (defaults: --config's, here {config})")
    training.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                          help="fairseq fine-tuning YAML whose hyper-parameters are the defaults below "
                               "(default: configs/finetuning/squad2_tiny.yaml)")
    training.add_argument("--lr", type=bounded_float(0, open_min=True), default=defaults.lr,
                          help="peak learning rate (%(default)g)")
    training.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                          help="windows per update (%(default)s)")
    training.add_argument("--updates", type=positive_int, default=defaults.updates,
                          help="number of updates; the learning rate reaches 0 at the last (%(default)s)")
    training.add_argument("--warmup-updates", type=bounded_int(min=0), default=defaults.warmup_updates,
                          help="linear warm-up updates (%(default)s)")
    training.add_argument("--weight-decay", type=bounded_float(min=0), default=defaults.weight_decay,
                          help="(%(default)g)")
    training.add_argument("--adam-betas", type=ratio(open_max=True), nargs=2, default=defaults.adam_betas,
                          help="(%(default)s)")
    training.add_argument("--adam-eps", type=bounded_float(0, open_min=True), default=defaults.adam_eps,
                          help="(%(default)g)")
    training.add_argument("--clip-norm", type=bounded_float(min=0), default=defaults.clip_norm,
                          help="gradient norm clipping, 0 for none (%(default)g)")
    training.add_argument("--dropout", type=ratio(open_max=True), default=defaults.dropout,
                          help="dropout and attention dropout (%(default)s; none: the model's)")
    training.add_argument("--seed", type=seed_int, default=defaults.seed, help="(%(default)s)")
    add_answer_arguments(parser, runtime=False)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    from fairseq_ext.hf.finetune import TrainingSettings, finetune
    from fairseq_ext.hf.qa import answer_questions, load_qa_model, model_settings
    from fairseq_ext.outputs import OutputDirectory
    from fairseq_ext.squad import load_squad
    from fairseq_ext.squad.predict import write_predictions

    hf_logging.set_verbosity_error()
    train = load_squad(args.train)
    print(f"{args.train}: {train.summary()}")
    valid = load_squad(args.valid, training=False) if args.valid else None
    if valid is not None:
        print(f"{args.valid}: {valid.summary()}")
    output = OutputDirectory(args.out, "finetune_hf", inputs=[args.model, args.train, args.valid],
                             replace=args.force)
    _, base = load_qa_model(args.model, trained_head=False)
    settings, described = model_settings(base, args)
    del base
    print(f"settings: {described}")
    training = TrainingSettings(lr=args.lr, batch_size=args.batch_size, updates=args.updates,
                                warmup_updates=args.warmup_updates, weight_decay=args.weight_decay,
                                adam_betas=tuple(args.adam_betas), adam_eps=args.adam_eps,
                                clip_norm=args.clip_norm, dropout=args.dropout, seed=args.seed)
    print(f"training: {', '.join(f'{k}={v}' for k, v in dataclasses.asdict(training).items())}")
    results = None
    with output.staged() as staging, tempfile.TemporaryDirectory() as work_dir:  # work_dir: the Trainer's
        tokenizer, model, log = finetune(args.model, train.examples, settings, training, Path(work_dir),
                                         progress=sys.stderr.isatty())
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        (staging / "train_log.json").write_text("".join(json.dumps(record) + "\n" for record in log))
        print(f"{len(log)} updates, loss {log[0]['loss']:.3f} -> {log[-1]['loss']:.3f}")
        if valid is not None:
            predictions = answer_questions(valid.examples, tokenizer, model, settings, valid.version_2)
            results = write_predictions(staging, valid.examples, predictions, settings, valid.version_2)
    if results is not None:
        print(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


def cli() -> None:
    run_cli(main)
