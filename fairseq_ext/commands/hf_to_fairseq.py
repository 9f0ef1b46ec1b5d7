"""convert/hf_to_fairseq.py: a Hugging Face RoBERTa -> a verified fairseq model directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.cli import bounded_float, run_cli
from fairseq_ext.export.config import DEFAULT_TOLERANCE
from fairseq_ext.tokenizer import add_tokenizer_argument


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hf_to_fairseq.py",
        description="Import a Hugging Face RoBERTa (RobertaForMaskedLM, RobertaModel, "
                    "RobertaForQuestionAnswering) as a fairseq model directory: model.pt (restorable with "
                    "scripts/pretrain.sh --restore, loadable with fairseq's RobertaModel.from_pretrained), "
                    "dict.txt, encoder.json, vocab.bpe. Verified against the HF model (same token ids, "
                    "outputs within --tolerance) before anything is written.")
    parser.add_argument("--model", required=True,
                        help="HF model directory, or a hub id (from the local Hugging Face cache; "
                             "missing files are downloaded unless HF_HUB_OFFLINE=1)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    add_tokenizer_argument(parser, ": GPT-2's files, which the model's tokenizer must be; without one "
                           "found, they are rebuilt from the model's own merges")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the comparison with the HF model")
    parser.add_argument("--tolerance", type=bounded_float(min=0), default=DEFAULT_TOLERANCE,
                        help="largest allowed |output difference| in verification (default %(default)g)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from fairseq_ext.hf.hub import resolve_model_dir

    model_dir = resolve_model_dir(args.model)  # before the heavy imports: a wrong id fails at once
    from transformers.utils import logging as hf_logging

    from fairseq_ext.export.from_hf import describe, import_model
    from fairseq_ext.export.verify import VerificationError

    hf_logging.disable_progress_bar()
    try:
        report = import_model(model_dir, args.out, args.tokenizer, args.force, args.verify, args.tolerance)
    except VerificationError as err:
        print(f"hf_to_fairseq.py: verification failed, nothing written: {err}", file=sys.stderr)
        return 1
    for line in describe(report):
        print(line)
    print(f"wrote {args.out}: {', '.join(sorted(path.name for path in args.out.iterdir()))}")
    return 0


def cli() -> None:
    run_cli(main)
