"""The fairseq dataset that batches SQuAD FeatureArrays (fairseq_ext.squad.format).

Training items are windows. Evaluation items are questions with all their windows, so every batch
holds whole questions: EM/F1 can be computed batch by batch and summed, on any number of GPUs. A question
whose windows exceed max_tokens (a long context: 17 windows of 384 tokens > 6144) is a batch of its own,
so it is still scored (fairseq's batching would stop on an assertion).
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
import torch
from fairseq.data import FairseqDataset

from fairseq_ext.squad.data import SquadExample
from fairseq_ext.squad.format import FeatureArrays

logger = logging.getLogger(__name__)


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
        # random order (fairseq seeds numpy per epoch), then by length: batches (dataset.batch_size or
        # dataset.max_tokens, counted with the padding) hold similar lengths; fairseq shuffles the batches
        indices = np.random.permutation(len(self))
        return indices[np.argsort(self.sizes[indices], kind="mergesort")]

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        """fairseq's batches; evaluation questions larger than ``max_tokens`` each in a batch of their own."""
        if self.examples is None or not max_tokens:
            return super().batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple)
        oversized = self.padded_tokens[indices] > max_tokens
        batches = super().batch_by_size(indices[~oversized], max_tokens, max_sentences,
                                        required_batch_size_multiple)
        if oversized.any():
            logger.info("%d questions have more window tokens than max_tokens=%d: each is a batch of its own",
                        int(oversized.sum()), max_tokens)
        return [*batches, *(indices[oversized][:, None])]

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
