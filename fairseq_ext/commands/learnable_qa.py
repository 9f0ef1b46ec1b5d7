"""Writes a learnable SQuAD v2 set: made-up contexts about invented people, questions on one attribute
each (a third unanswerable), names never shared between train and dev.

    scripts/learnable_qa.py --out data/learnable            # English (GPT-2 BPE path)
    scripts/learnable_qa.py --out data/learnable-zh --lang zh  # Chinese (SentencePiece path)

writes into OUT: train.json and dev.json (SQuAD v2.0), and corpus/contexts.txt (the training contexts,
one per line, a blank line after each: a document per context for split_data.py / prepare_corpus.py, the
masked-LM pretraining corpus). The same --seed gives the same files. A small model fine-tuned on it
answers unseen questions well above the "no answer" baseline: a check that fine-tuning learns.
"""

from __future__ import annotations

import argparse
import json

from fairseq_ext.cli import Range, bounded_int, ratio, run_cli, seed_int
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.squad.learnable import (
    ABSENT_SHARE,
    FACTS,
    LANGUAGES,
    PEOPLE,
    WORDINGS,
    NamesExhausted,
    contexts,
    make_dataset,
)


def count_range(most: int):
    """argparse type: "N" or "LOW-HIGH" -> (low, high), a count drawn per context, each in 1..most."""
    bound = Range(int, 1, most)

    def parse(text: str) -> tuple[int, int]:
        low, _, high = text.partition("-")
        try:
            bounds = bound.parse(low), bound.parse(high or low)
        except ValueError as err:  # the whole text named: a part of it alone would mislead
            if "whole number" in str(err):
                raise argparse.ArgumentTypeError(f"{text!r}: not a number or a range LOW-HIGH (e.g. 2-3)") \
                    from None
            raise argparse.ArgumentTypeError(str(err)) from None
        if bounds[0] > bounds[1]:
            raise argparse.ArgumentTypeError(f"{text!r}: LOW must not exceed HIGH")
        return bounds

    parse.__name__ = "count range"
    return parse


def show_range(bounds: tuple[int, int]) -> str:
    return str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}-{bounds[1]}"


# a million questions take minutes to write; more is a mistake, not a data set
QUESTIONS = bounded_int(1, 1_000_000)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="language (default: en)")
    parser.add_argument(
        "--train-questions", type=QUESTIONS, default=12000, help="at least this many (default: 12000)"
    )
    parser.add_argument("--dev-questions", type=QUESTIONS, default=600,
                        help="at least this many (default: 600)")
    parser.add_argument("--people", type=count_range(8), default=PEOPLE, metavar="N|LOW-HIGH",
                        help=f"persons per context, drawn per context (default: {show_range(PEOPLE)})")
    parser.add_argument("--facts", type=count_range(4), default=FACTS, metavar="N|LOW-HIGH",
                        help="attributes stated per person, at most 4: a person keeps unstated attributes to "
                        f"ask about (default: {show_range(FACTS)})")
    parser.add_argument("--own-attributes", action="store_true",
                        help="draw each person's attribute types separately (default: the persons of a "
                        "context share them, so the question's name decides which sentence answers)")
    parser.add_argument(
        "--absent-share",
        type=ratio(),
        default=ABSENT_SHARE,
        help="share of the unanswerable questions asking about a person absent from the context (the rest "
        "ask about an attribute not stated for a person present; default: %(default)s)",
    )
    parser.add_argument("--wordings", type=bounded_int(1, WORDINGS), default=WORDINGS,
                        help="statement templates and question wordings per attribute, the first N of its "
                        f"{WORDINGS} (default: {WORDINGS}; 1: one sentence form per attribute, from which a "
                        "tiny model learns the name check sooner: docs/learnable-qa.md)")
    parser.add_argument("--seed", type=seed_int, default=1, help="random seed (default: 1)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    output = OutputDirectory(args.out, "learnable_qa")  # checked before the questions are made
    try:
        train, dev = make_dataset(
            args.lang,
            args.train_questions,
            args.dev_questions,
            args.seed,
            args.people,
            args.facts,
            args.absent_share,
            not args.own_attributes,
            args.wordings,
        )
    except NamesExhausted as err:  # every name is used once: the pool bounds the set's size
        raise UserInputError(f"{err}: ask for fewer questions (--train-questions, --dev-questions) or "
                             "fewer persons per context (--people)") from None
    with output.staged() as staging:
        for name, squad in (("train.json", train), ("dev.json", dev)):
            (staging / name).write_text(json.dumps(squad, ensure_ascii=False, indent=1), encoding="utf-8")
        (staging / "corpus").mkdir()
        (staging / "corpus" / "contexts.txt").write_text(
            "".join(f"{text}\n\n" for text in contexts(train)), encoding="utf-8"
        )
    for name, squad in (("train", train), ("dev", dev)):
        qas = [qa for paragraph in squad["data"][0]["paragraphs"] for qa in paragraph["qas"]]
        print(
            f"{name}: {len(qas)} questions ({sum(qa['is_impossible'] for qa in qas)} unanswerable) on "
            f"{len(squad['data'][0]['paragraphs'])} contexts"
        )
    print(f"wrote {args.out}")
    return 0


def cli() -> None:
    run_cli(main)
