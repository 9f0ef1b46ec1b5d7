"""The ``data-bin/squad2`` format, owned here (numpy only, no fairseq): written by prepare_squad2, read by
the squad2 task and the launcher's checks.

    DIR/dict.txt                    the fairseq dictionary the ids index
    DIR/<split>.features.npz        FeatureArrays: every window's token ids, labels, character offsets
    DIR/<split>.json                an evaluation split's SQuAD file as given: EM/F1 are scored against it
    DIR/squad2_features.json        the window settings and per-split counts (METADATA_FILE)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fairseq_ext.squad.features import QAFeature
from fairseq_ext.squad.settings import QASettings
from fairseq_ext.tokenizer import DICTIONARY_FILE
from fairseq_ext.tokenizer import RECORD_FILE as TOKENIZER_RECORD
from fairseq_ext.tokenizer.dictionary import MASK, roberta_symbols

METADATA_FILE = "squad2_features.json"
__all__ = ["DICTIONARY_FILE", "MASK", "METADATA_FILE", "FeatureArrays", "check_window_settings",
           "examples_file", "features_file", "read_metadata", "task_symbols", "write_metadata"]
NO_OFFSET = -1  # token_offsets of question and special tokens (None in QAFeature)


def task_symbols(dict_path) -> list[str]:
    """The squad2 task's dictionary (SquadV2Task.load_dictionary): the RoBERTa dictionary of dict.txt
    (tokenizer.dictionary.roberta_symbols)."""
    return roberta_symbols(dict_path)


def features_file(data_dir, split: str) -> Path:
    return Path(data_dir) / f"{split}.features.npz"


def examples_file(data_dir, split: str) -> Path:
    """The SQuAD JSON of an evaluation split, copied as is: EM/F1 are computed against its answers."""
    return Path(data_dir) / f"{split}.json"


def read_metadata(data_dir) -> dict:
    return json.loads((Path(data_dir) / METADATA_FILE).read_text())


def write_metadata(data_dir, settings: QASettings, splits: dict) -> None:
    metadata = {**settings.windows(), "splits": splits}
    (Path(data_dir) / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def check_window_settings(data_dir, settings: QASettings, where: str = "task.",
                          positions: Optional[int] = None) -> None:
    """The window settings must be those the features in ``data_dir`` were prepared with. The error gives
    the command that prepares the data with ``settings`` (the config's), its sources and tokenizer as
    recorded; and the override that would instead take the data's windows, only when they fit the
    model's ``positions``."""
    metadata = read_metadata(data_dir)
    differ = [name for name in QASettings.WINDOW_FIELDS if metadata[name] != getattr(settings, name)]
    if not differ:
        return
    prepared = ", ".join(f"{name}={metadata[name]}" for name in differ)
    wanted = ", ".join(f"{where}{name}={getattr(settings, name)}" for name in differ)
    message = (f"{data_dir} was prepared with {prepared} but {wanted}: prepare it with these windows: "
               f"{prepare_command(data_dir, settings)}")
    if positions is None or metadata["max_seq_length"] <= positions:
        message += (" (or keep the data with "
                    + " ".join(f"{where}{name}={metadata[name]}" for name in differ) + ")")
    raise ValueError(message)


def prepare_command(data_dir, settings: QASettings) -> str:
    """The prepare_squad2.py line that rebuilds ``data_dir`` from its recorded sources and tokenizer with
    ``settings``' windows (placeholders where nothing was recorded)."""
    metadata = read_metadata(data_dir)
    splits = metadata.get("splits") or {}
    sources = [f"--{split} {_shown(splits[split].get('source', split.upper() + '_JSON'))}"
               for split in ("train", "valid") if split in splits]
    sources = sources or ["--train TRAIN_JSON --valid VALID_JSON"]
    tokenizer = "DIR"
    record_file = Path(data_dir) / TOKENIZER_RECORD
    if record_file.is_file():
        tokenizer = json.loads(record_file.read_text()).get("directory", tokenizer)
    return " ".join(["python scripts/prepare_squad2.py", *sources, "--tokenizer", _shown(tokenizer),
                     "--destdir", _shown(data_dir), *settings.window_arguments()])


def _shown(path) -> str:
    """A path for a command line to copy: relative to the current directory when below it, quoted."""
    relative = os.path.relpath(path) if os.path.isabs(path) else str(path)
    return shlex.quote(str(path) if relative.startswith("..") else relative)


@dataclass
class FeatureArrays:
    """QAFeatures column-wise: token arrays concatenated over windows, one row per window otherwise."""

    input_ids: np.ndarray  # int32 (n_tokens,)
    token_offsets: np.ndarray  # int32 (n_tokens, 2): char span in the context, NO_OFFSET outside it
    window_bounds: np.ndarray  # int64 (n_windows + 1,): window i spans tokens bounds[i]:bounds[i + 1]
    example_index: np.ndarray  # int32 (n_windows,), non-decreasing
    start_positions: np.ndarray  # int32 (n_windows,)
    end_positions: np.ndarray
    context_start: np.ndarray

    @classmethod
    def from_features(cls, features: Sequence[QAFeature]) -> FeatureArrays:
        lengths = np.array([len(f.input_ids) for f in features], dtype=np.int64)
        offsets = [o if o is not None else (NO_OFFSET, NO_OFFSET) for f in features for o in f.token_offsets]
        return cls(
            input_ids=np.array([i for f in features for i in f.input_ids], dtype=np.int32),
            token_offsets=np.array(offsets, dtype=np.int32).reshape(-1, 2),
            window_bounds=np.concatenate([[0], np.cumsum(lengths)]),
            example_index=np.array([f.example_index for f in features], dtype=np.int32),
            start_positions=np.array([f.start_position for f in features], dtype=np.int32),
            end_positions=np.array([f.end_position for f in features], dtype=np.int32),
            context_start=np.array([f.context_start for f in features], dtype=np.int32),
        )

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
            np.savez(f, **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> FeatureArrays:
        with np.load(path) as arrays:
            return cls(**{field.name: arrays[field.name] for field in dataclasses.fields(cls)})

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.window_bounds)

    def tokens(self, window: int) -> np.ndarray:
        return self.input_ids[self.window_bounds[window]:self.window_bounds[window + 1]]

    def feature(self, window: int, example_index: Optional[int] = None) -> QAFeature:
        """Window ``window`` as a QAFeature (``example_index`` overrides the stored one)."""
        span = slice(self.window_bounds[window], self.window_bounds[window + 1])
        return QAFeature(
            example_index=int(self.example_index[window]) if example_index is None else example_index,
            input_ids=self.input_ids[span].tolist(),
            start_position=int(self.start_positions[window]),
            end_position=int(self.end_positions[window]),
            token_offsets=[None if start == NO_OFFSET else (start, end)
                           for start, end in self.token_offsets[span].tolist()],
            context_start=int(self.context_start[window]),
        )
