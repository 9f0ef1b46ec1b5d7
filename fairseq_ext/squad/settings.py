"""PLACEHOLDER until the lead's QASettings lands (issue 10)."""

from dataclasses import dataclass


@dataclass
class QASettings:
    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0
