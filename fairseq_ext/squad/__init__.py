"""Fairseq-free SQuAD v1.1/v2.0 code shared by the fairseq task and the Hugging Face evaluation:
reading the JSON, sliding-window features, run_qa post-processing and the official metric."""

from fairseq_ext.squad.data import Answer, SquadData, SquadExample, load_squad, parse_articles
from fairseq_ext.squad.features import HFTokenizerAdapter, QAFeature, build_features
from fairseq_ext.squad.metric import compute_exact, compute_f1, normalize_answer, squad_evaluate
from fairseq_ext.squad.postprocess import Predictions, postprocess_predictions

__all__ = [
    "Answer", "SquadData", "SquadExample", "load_squad", "parse_articles",
    "HFTokenizerAdapter", "QAFeature", "build_features",
    "compute_exact", "compute_f1", "normalize_answer", "squad_evaluate",
    "Predictions", "postprocess_predictions",
]
