"""convert/fairseq_to_hf.py: a fairseq RoBERTa checkpoint -> a verified Hugging Face model directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import bounded_float, existing_file, run_cli
from fairseq_ext.export.config import DEFAULT_TOLERANCE
from fairseq_ext.tokenizer import add_tokenizer_argument


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fairseq_to_hf.py",
        description="Export a fairseq RoBERTa checkpoint (masked LM or roberta_span_qa) to a Hugging Face "
                    "model directory with its model card, verified against fairseq (same token ids, logits "
                    "within --tolerance) before anything is written.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="fairseq checkpoint (.pt)")
    add_tokenizer_argument(parser, " the model was trained with (SentencePiece: exported as XLMRobertaFor*)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    parser.add_argument("--dict", type=Path, default=None,
                        help="the fairseq dict.txt the model was trained with (default: dict.txt of the "
                             "checkpoint's training data directory if it exists, else the tokenizer's)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the comparison with the fairseq model")
    parser.add_argument("--tolerance", type=bounded_float(min=0), default=DEFAULT_TOLERANCE,
                        help="largest allowed |logit difference| in verification (default %(default)g)")
    card = parser.add_argument_group("model card and answering settings")
    card.add_argument("--null-threshold", metavar="T|best",
                      help="span QA: store this \"no answer\" threshold (null_score_diff_threshold) in the "
                           "export; 'best' takes best_f1_thresh from --eval-results (default: the "
                           "fine-tuning task's)")
    card.add_argument("--eval-results", type=Path, metavar="FILE",
                      help="eval_results.json of predict_squad2.py/evaluate_hf.py: EM/F1/HasAns/NoAns go "
                           "into the card's model-index")
    card.add_argument("--eval-dataset", metavar="HUB_ID",
                      help="the data the eval results were measured on, as a hub dataset id (default: "
                           "squad_v2 when the official dev-v2.0.json was scored, recognised by its sha256; "
                           "else 'custom', named by the scored file)")
    card.add_argument("--language", nargs="+", default=["en"], help="the model's languages (default: en)")
    card.add_argument("--license", help="license id for the card, e.g. mit (default: none stated)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    existing_file(args.checkpoint, "checkpoint")  # before torch and transformers load: fails at once
    from transformers.utils import logging as hf_logging

    from fairseq_ext.export.to_hf import CardOptions, describe, export
    from fairseq_ext.export.verify import VerificationError

    hf_logging.disable_progress_bar()  # a few tensors: the report says what was done
    options = CardOptions(languages=tuple(args.language), license=args.license,
                          eval_results=args.eval_results, eval_dataset=args.eval_dataset,
                          null_threshold=args.null_threshold)
    try:
        report = export(args.checkpoint, args.tokenizer, args.out, args.dict, args.force, args.verify,
                        args.tolerance, options)
    except VerificationError as err:
        print(f"fairseq_to_hf.py: verification failed, nothing written: {err}", file=sys.stderr)
        return 1
    for line in describe(report):
        print(line)
    print(f"wrote {args.out}: {', '.join(sorted(path.name for path in args.out.iterdir()))}")
    return 0


def cli() -> None:
    run_cli(main)
