"""Builds the SQuAD features for fairseq fine-tuning once: the task squad2 reads them every epoch.

    scripts/prepare_squad2.py --train train-v2.0.json --valid dev-v2.0.json --gpt2-bpe gpt2_bpe \\
        --destdir data-bin/squad2

writes into DESTDIR: dict.txt (the tokenizer's fairseq dictionary), train.features.npz and
valid.features.npz (token ids, labels and character offsets of every window), valid.json (a copy of the
validation file: EM/F1 are computed against its answers), squad2_features.json (settings, counts, skipped
questions) and tokenizer.json (which tokenizer made the features: later stages refuse another one).
--tokenizer takes a GPT-2 BPE or a SentencePiece directory (Chinese: scripts/train_spm.py's output).
The window settings must match the task's (task.max_seq_length, task.doc_stride, task.max_query_length).
DESTDIR is replaced as a whole (see fairseq_ext/outputs.py): a re-run with --train only leaves no valid.*
of an earlier run.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np

from fairseq_ext.cli import existing_file, run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.outputs import OutputDirectory
from fairseq_ext.squad import SquadData, build_features, load_squad
from fairseq_ext.squad.format import (
    DICTIONARY_FILE,
    FeatureArrays,
    examples_file,
    features_file,
    task_symbols,
    write_metadata,
)
from fairseq_ext.squad.settings import QASettings
from fairseq_ext.tokenizer import (
    DictionaryTokenizer,
    add_tokenizer_argument,
    find_tokenizer_dir,
    load_tokenizer,
    write_record,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", metavar="JSON", help="SQuAD training file (v2.0 or v1.1)")
    parser.add_argument("--valid", metavar="JSON",
                        help="SQuAD validation file, scored with EM/F1 while training")
    add_tokenizer_argument(parser, ", with dict.txt")
    parser.add_argument("--destdir", metavar="DIR", default="data-bin/squad2",
                        help="output directory (default: data-bin/squad2)")
    QASettings.add_arguments(parser, QASettings.WINDOW_FIELDS)
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (the counts are still printed)")
    args = parser.parse_args(argv)
    if not args.train and not args.valid:
        parser.error("give --train and/or --valid")
    return args


def load_split(split: str, source: Path) -> SquadData:
    """A training split drops questions whose answer cannot be located; a validation split keeps them
    (scored by their answers' text, as the official scripts do; their windows are labelled no answer)."""
    squad = load_squad(source, training=split == "train")
    print(f"{split}: {source}: {squad.summary()}")
    if not squad.examples:
        raise UserInputError(f"{source}: no usable questions")
    if not squad.labelled:
        raise UserInputError(f"{source} has no answers (a test file): training and validation need them; "
                             "answer it with predict_squad2.py")
    return squad


def prepare_split(split: str, source: Path, squad: SquadData, tokenizer: DictionaryTokenizer,
                  settings: QASettings, destdir: Path, progress: bool = True) -> dict:
    """Writes DESTDIR/<split>.features.npz; returns the split's counts for the metadata file."""
    features = build_features(squad.examples, tokenizer, progress=progress, **settings.windows())
    arrays = FeatureArrays.from_features(features)
    arrays.save(features_file(destdir, split))
    labelled = np.zeros(len(squad.examples), dtype=bool)
    labelled[arrays.example_index[arrays.start_positions > 0]] = True
    answerable = np.array([not example.is_impossible for example in squad.examples])
    counts = {
        "source": str(source),
        "version_2": squad.version_2,
        "questions": len(squad.examples),
        "unanswerable": int((~answerable).sum()),
        "windows": len(arrays),
        "answers_in_no_window": int((answerable & ~labelled).sum()),
        "unknown_tokens": int((arrays.input_ids == tokenizer.unk_index).sum()),
        "repaired": squad.repaired,
        "skipped": len(squad.skipped),
        "skipped_questions": [{"id": qid, "reason": reason} for qid, reason in squad.skipped],
        "unlocated_answers": [{"id": qid, "reason": reason} for qid, reason in squad.unlocated],
    }
    print(f"{split}: {counts['windows']} windows; {counts['answers_in_no_window']} answerable questions "
          f"have no window holding the whole answer (trained as no answer); {counts['unknown_tokens']} <unk> "
          "tokens")
    return counts


def main(argv=None):
    args = parse_args(argv)
    settings = QASettings.from_object(args)
    tokenizer_dir = find_tokenizer_dir(args.tokenizer, need_dict=True)
    sources = {split: existing_file(path, f"--{split} file")
               for split, path in (("train", args.train), ("valid", args.valid)) if path}
    symbols = task_symbols(tokenizer_dir / DICTIONARY_FILE)
    tokenizer = load_tokenizer(tokenizer_dir).to_dictionary(symbols)

    squads = {split: load_split(split, source) for split, source in sources.items()}
    output = OutputDirectory(args.destdir, "prepare_squad2",
                             inputs=[*sources.values(),
                                     *(tokenizer_dir / name for name in os.listdir(tokenizer_dir))])
    with output.staged() as destdir:
        splits = {split: prepare_split(split, sources[split], squad, tokenizer, settings, destdir,
                                       progress=not args.quiet)
                  for split, squad in squads.items()}
        shutil.copyfile(tokenizer_dir / DICTIONARY_FILE, destdir / DICTIONARY_FILE)
        if "valid" in sources:
            shutil.copyfile(sources["valid"], examples_file(destdir, "valid"))
        write_metadata(destdir, settings, splits)
        write_record(destdir, tokenizer_dir)
    print(f"wrote {args.destdir}")


def cli() -> None:
    run_cli(main)
