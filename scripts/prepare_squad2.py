#!/usr/bin/env python
"""Builds the SQuAD features for fairseq fine-tuning once: the task squad2 reads them every epoch.

    scripts/prepare_squad2.py --train train-v2.0.json --valid dev-v2.0.json --gpt2-bpe gpt2_bpe \\
        --destdir data-bin/squad2

writes into DESTDIR: dict.txt (the fairseq GPT-2 dictionary), train.features.npz and valid.features.npz
(token ids, labels and character offsets of every window), valid.json (a copy of the validation file:
EM/F1 are computed against its answers) and squad2_features.json (settings, counts, skipped questions).
The window settings must match the task's (task.max_seq_length, task.doc_stride, task.max_query_length).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from fairseq_ext.bpe import DictionaryBpe, Gpt2Bpe, resolve_gpt2_bpe_dir
from fairseq_ext.cli import UserInputError, existing_file, run_cli
from fairseq_ext.squad import build_features, load_squad
from fairseq_ext.tasks.squad2 import (
    FEATURE_SETTINGS,
    METADATA_FILE,
    SquadV2Task,
    examples_file,
    features_file,
)
from fairseq_ext.tasks.squad2_data import FeatureArrays


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", metavar="JSON", help="SQuAD training file (v2.0 or v1.1)")
    parser.add_argument("--valid", metavar="JSON",
                        help="SQuAD validation file, scored with EM/F1 while training")
    parser.add_argument("--gpt2-bpe", metavar="DIR",
                        help="directory with encoder.json, vocab.bpe, dict.txt (default: $GPT2_BPE_DIR)")
    parser.add_argument("--destdir", metavar="DIR", default="data-bin/squad2",
                        help="output directory (default: data-bin/squad2)")
    parser.add_argument("--max-seq-length", type=int, default=384, help="tokens per window (default: 384)")
    parser.add_argument("--doc-stride", type=int, default=128,
                        help="overlap of consecutive context windows in tokens (default: 128)")
    parser.add_argument("--max-query-length", type=int, default=64,
                        help="question tokens kept (default: 64)")
    args = parser.parse_args(argv)
    if not args.train and not args.valid:
        parser.error("give --train and/or --valid")
    return args


def prepare_split(split: str, source: Path, tokenizer: DictionaryBpe, args, unk_index: int) -> dict:
    """Writes DESTDIR/<split>.features.npz; returns the split's counts for the metadata file."""
    squad = load_squad(source)
    print(f"{split}: {source}: {squad.summary()}")
    if not squad.examples:
        raise UserInputError(f"{source}: no usable questions")
    features = build_features(squad.examples, tokenizer, progress=True,
                              **{name: getattr(args, name) for name in FEATURE_SETTINGS})
    arrays = FeatureArrays.from_features(features)
    arrays.save(features_file(args.destdir, split))
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
        "unknown_tokens": int((arrays.input_ids == unk_index).sum()),
        "repaired": squad.repaired,
        "skipped": len(squad.skipped),
        "skipped_questions": [{"id": qid, "reason": reason} for qid, reason in squad.skipped],
    }
    print(f"{split}: {counts['windows']} windows; {counts['answers_in_no_window']} answerable questions "
          f"have no window holding the whole answer (trained as no answer); {counts['unknown_tokens']} <unk> "
          "tokens")
    return counts


def main(argv=None):
    args = parse_args(argv)
    bpe_dir = resolve_gpt2_bpe_dir(args.gpt2_bpe, need_dict=True)
    sources = {split: existing_file(path, f"--{split} file")
               for split, path in (("train", args.train), ("valid", args.valid)) if path}
    try:
        dictionary = SquadV2Task.load_dictionary(bpe_dir / "dict.txt")
    except (ValueError, RuntimeError) as err:  # fairseq's message for a malformed line
        raise UserInputError(f"{bpe_dir / 'dict.txt'}: not a fairseq dictionary: {err}") from err
    tokenizer = DictionaryBpe(Gpt2Bpe.from_dir(bpe_dir), dictionary.symbols, unk_index=dictionary.unk())

    destdir = Path(args.destdir)
    destdir.mkdir(parents=True, exist_ok=True)
    metadata = {name: getattr(args, name) for name in FEATURE_SETTINGS}
    metadata["splits"] = {split: prepare_split(split, source, tokenizer, args, dictionary.unk())
                          for split, source in sources.items()}
    shutil.copyfile(bpe_dir / "dict.txt", destdir / "dict.txt")
    if "valid" in sources:
        shutil.copyfile(sources["valid"], examples_file(destdir, "valid"))
    (destdir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {destdir}")


if __name__ == "__main__":
    run_cli(main)
