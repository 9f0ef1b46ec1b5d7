"""SQuAD features as flat numpy arrays (written once by scripts/prepare_squad2.py) and the fairseq
dataset that batches them.

Training items are windows. Evaluation items are questions with all their windows, so every batch
holds whole questions: EM/F1 can be computed batch by batch and summed, on any number of GPUs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from fairseq.data import FairseqDataset

from fairseq_ext.squad.data import SquadExample
from fairseq_ext.squad.features import QAFeature

NO_OFFSET = -1  # token_offsets of question and special tokens (None in QAFeature)


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


class SquadFeatureDataset(FairseqDataset):
    """Batches of windows ``<s> question </s></s> context </s>``, right-padded.

    Without ``examples`` an item is one window. With ``examples`` (the questions the windows were built
    from, in order) an item is one question with all its windows, and each batch also carries
    ``sample["evaluation"]``: the batch's examples and features for post-processing.
    """

    def __init__(self, arrays: FeatureArrays, pad_idx: int, examples: Optional[Sequence[SquadExample]] = None,
                 version_2: bool = True):
        self.arrays = arrays
        self.pad_idx = pad_idx
        self.examples = examples
        self.version_2 = version_2
        lengths = arrays.lengths
        if examples is None:
            self.item_bounds = np.arange(len(arrays) + 1)
            self.sizes = lengths
            self.padded_tokens = lengths
        else:
            counts = np.bincount(arrays.example_index, minlength=len(examples))
            if len(counts) != len(examples) or not counts.all() or np.any(np.diff(arrays.example_index) < 0):
                raise ValueError(f"features do not match the {len(examples)} examples (every example needs "
                                 "windows, in example order)")
            self.item_bounds = np.concatenate([[0], np.cumsum(counts)])
            self.sizes = np.maximum.reduceat(lengths, self.item_bounds[:-1])
            self.padded_tokens = self.sizes * counts

    def __getitem__(self, index):
        return index

    def __len__(self):
        return len(self.item_bounds) - 1

    def num_tokens(self, index):
        return int(self.padded_tokens[index])

    def num_tokens_vec(self, indices):
        return self.padded_tokens[indices]

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        # random order (fairseq seeds numpy per epoch), then by length to limit padding
        indices = np.random.permutation(len(self))
        return indices[np.argsort(self.sizes[indices], kind="mergesort")]

    def collater(self, samples):
        if len(samples) == 0:
            return {}
        samples = [int(i) for i in samples]
        windows = np.concatenate([np.arange(self.item_bounds[i], self.item_bounds[i + 1]) for i in samples])
        lengths = self.arrays.lengths[windows]
        tokens = np.full((len(windows), lengths.max()), self.pad_idx, dtype=np.int64)
        for row, window in enumerate(windows):
            tokens[row, :lengths[row]] = self.arrays.tokens(window)
        sample = {
            "id": torch.tensor(samples, dtype=torch.long),
            "nsentences": len(windows),
            "ntokens": int(lengths.sum()),
            "net_input": {"src_tokens": torch.from_numpy(tokens), "src_lengths": torch.from_numpy(lengths)},
            "start_positions": torch.from_numpy(self.arrays.start_positions[windows].astype(np.int64)),
            "end_positions": torch.from_numpy(self.arrays.end_positions[windows].astype(np.int64)),
        }
        if self.examples is not None:
            # example_index renumbered within the batch: post-processing sees only these examples
            position = {example: k for k, example in enumerate(samples)}
            example_index = self.arrays.example_index
            sample["evaluation"] = {
                "examples": [self.examples[i] for i in samples],
                "features": [self.arrays.feature(w, position[int(example_index[w])]) for w in windows],
                "version_2": self.version_2,
            }
        return sample
