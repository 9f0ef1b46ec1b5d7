"""The one declaration of the SQuAD window and post-processing settings (run_qa's defaults).

Used by the fairseq task config, prepare/predict, the Hugging Face side, the demo and the benchmarks.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from fairseq_ext.cli import Range
from fairseq_ext.errors import UserInputError

SPECIAL_TOKENS_IN_PAIR = 4  # <s> question </s></s> context </s>


def _setting(default, help: str, valid: Range):
    return field(default=default, metadata={"help": help, "range": valid})


@dataclass(frozen=True)
class QASettings:
    max_seq_length: int = _setting(384, "tokens per window", Range(int, min=1))
    # a negative stride would leave context tokens between windows, in none of them
    doc_stride: int = _setting(128, "overlap of consecutive context windows in tokens", Range(int, min=0))
    max_query_length: int = _setting(64, "question tokens kept", Range(int, min=1))
    n_best_size: int = _setting(20, "top start and end logits per window combined into candidate answers",
                                Range(int, min=1))
    max_answer_length: int = _setting(30, "longest answer in tokens", Range(int, min=1))
    # NaN compares false with everything: the model would never answer "no answer"
    null_score_diff_threshold: float = _setting(
        0.0, 'SQuAD 2.0: answer "" when null score - best span score exceeds this', Range(float))

    WINDOW_FIELDS = ("max_seq_length", "doc_stride", "max_query_length")

    def __post_init__(self) -> None:
        # wherever the values come from (an option, a task config, a model's config.json)
        for f in dataclasses.fields(self):
            f.metadata["range"].check(getattr(self, f.name), f.name)
        # a window holds the question, the special tokens and more context tokens than the stride, so
        # that consecutive windows advance
        if self.max_seq_length - self.max_query_length - SPECIAL_TOKENS_IN_PAIR <= self.doc_stride:
            raise UserInputError(f"doc_stride {self.doc_stride} must be smaller than the context window "
                                 f"max_seq_length - max_query_length - {SPECIAL_TOKENS_IN_PAIR} "
                                 f"({self.max_seq_length} - {self.max_query_length} - "
                                 f"{SPECIAL_TOKENS_IN_PAIR})")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_object(cls, source: Any, base: Optional[QASettings] = None) -> QASettings:
        """The settings found as attributes or keys of ``source`` (a task config, a dict, parsed
        arguments); those missing or None keep ``base``'s (default: the defaults)."""
        base = base or cls()
        values = {}
        for name in cls.names():
            value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
            values[name] = getattr(base, name) if value is None else value
        return cls(**values)

    def check_fits(self, positions: int, name: str = "max_seq_length", hint: str = "") -> None:
        """The one rule that a window fits the model: ``max_seq_length`` tokens need no more than the
        model's ``positions``; else a UserInputError saying ``name`` (the option or key the user gave)
        and ``hint``."""
        if self.max_seq_length > positions:
            raise UserInputError(f"{name} {self.max_seq_length} exceeds the model's {positions} "
                                 f"positions{hint}")

    def windows(self) -> dict[str, int]:
        """Keyword arguments of squad.build_features."""
        return {name: getattr(self, name) for name in self.WINDOW_FIELDS}

    def window_arguments(self) -> list[str]:
        """The window settings as prepare_squad2.py flags: ``["--max-seq-length", "384", ...]``."""
        return [item for name in self.WINDOW_FIELDS
                for item in ("--" + name.replace("_", "-"), str(getattr(self, name)))]

    def answers(self) -> dict[str, Any]:
        """Keyword arguments of squad.postprocess_predictions (besides the data)."""
        return {"n_best_size": self.n_best_size, "max_answer_length": self.max_answer_length,
                "null_score_diff_threshold": self.null_score_diff_threshold}

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.as_dict().items())

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, names: Optional[tuple[str, ...]] = None,
                      default_from: Optional[str] = None) -> None:
        """``--max-seq-length`` etc., each None unless given (``from_object`` fills in the rest);
        ``default_from`` says where unset ones come from (default: the values above)."""
        group = parser.add_argument_group("windows and answers")
        for f in dataclasses.fields(cls):
            if names is None or f.name in names:
                group.add_argument("--" + f.name.replace("_", "-"), type=f.metadata["range"].argument_type(),
                                   help=f"{f.metadata['help']} (default: {default_from or f.default})")


DEFAULT = QASettings()
# Windows for tiny CPU models (demo, tests, benchmarks); configs/finetuning/squad2_tiny.yaml matches.
TINY = QASettings(max_seq_length=128, doc_stride=32, max_query_length=32)
