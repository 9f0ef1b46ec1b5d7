"""fairseq task ``squad2``: extractive QA (SQuAD v2.0, or v1.1) on features made by scripts/prepare_squad2.py.

Validation reports ``em`` and ``f1`` over whole questions (run_qa post-processing of all windows of a
question; ``task.metric``: the official SQuAD metric, or ``cmrc``, the CMRC 2018 metric for Chinese, whose
EM and F1 they then are), and beside them ``baseline_f1``, the F1 of answering nothing on the same
questions (metric.no_answer_baseline: SQuAD 2.0's share of unanswerable questions), the figure to read F1
against; so ``checkpoint.best_checkpoint_metric=f1
checkpoint.maximize_best_checkpoint_metric=true`` keeps the best model. Each validation batch holds whole
questions (see squad2_data.SquadFeatureDataset), so the per-batch EM/F1 sums are plain scalars that
fairseq adds up across GPUs like any other logging output: no logits are gathered.
"""

# no `from __future__ import annotations` here: fairseq reads the config dataclass's field types
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from fairseq import metrics, utils
from fairseq.data import Dictionary
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import MISSING

from fairseq_ext.errors import UserInputError
from fairseq_ext.plugin.criterions.span_qa import SpanQACriterion
from fairseq_ext.plugin.tasks.squad2_dataset import SquadFeatureDataset
from fairseq_ext.squad import load_squad, postprocess_predictions
from fairseq_ext.squad.format import (
    DICTIONARY_FILE,
    METADATA_FILE,
    FeatureArrays,
    check_window_settings,
    examples_file,
    features_file,
    prepare_command,
)
from fairseq_ext.squad.metric import METRICS, evaluate, headline, no_answer_baseline
from fairseq_ext.squad.settings import DEFAULT, QASettings
from fairseq_ext.tokenizer.dictionary import load_roberta_dictionary

logger = logging.getLogger(__name__)


def _setting(name: str):
    """A task field declared by QASettings: its default and help."""
    spec = QASettings.__dataclass_fields__[name]
    note = " (must equal prepare_squad2.py's; checked)" if name in QASettings.WINDOW_FIELDS else ""
    return field(default=getattr(DEFAULT, name), metadata={"help": spec.metadata["help"] + note})


@dataclass
class SquadV2Config(FairseqDataclass):
    data: str = field(default=MISSING, metadata={
        "help": "directory made by scripts/prepare_squad2.py: dict.txt, <split>.features.npz, valid.json"})
    max_positions: int = field(default=512, metadata={
        "help": "positions of the model (the pretrained checkpoint's tokens_per_sample / max_positions)"})
    # the fields of QASettings, declared there
    max_seq_length: int = _setting("max_seq_length")
    doc_stride: int = _setting("doc_stride")
    max_query_length: int = _setting("max_query_length")
    n_best_size: int = _setting("n_best_size")
    max_answer_length: int = _setting("max_answer_length")
    null_score_diff_threshold: float = _setting("null_score_diff_threshold")
    metric: ChoiceEnum(METRICS) = field(default="squad", metadata={
        "help": "validation em/f1 (and so the best checkpoint by f1): squad, the official SQuAD v1.1/v2.0 "
                "metric, or cmrc, the CMRC 2018 metric (Chinese: character-level F1, EM without "
                "punctuation)"})


@register_task("squad2", dataclass=SquadV2Config)
class SquadV2Task(FairseqTask):
    """Span QA with roberta_span_qa and the span_qa criterion."""

    def __init__(self, cfg: SquadV2Config, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary

    @classmethod
    def load_dictionary(cls, filename):
        """dict.txt plus ``<mask>``, like fairseq's masked_lm: embedding sizes match the pretrained model."""
        return load_roberta_dictionary(filename)

    @classmethod
    def setup_task(cls, cfg: SquadV2Config, **kwargs):
        dict_path = Path(cfg.data) / DICTIONARY_FILE
        if not dict_path.is_file():
            raise FileNotFoundError(f"squad2 task: {dict_path} not found (task.data should be a directory "
                                    "made by scripts/prepare_squad2.py)")
        settings = QASettings.from_object(cfg)
        try:
            settings.check_fits(cfg.max_positions, name="task.max_seq_length", hint=" (task.max_positions)")
        except UserInputError as err:
            fix = f"task.max_seq_length={cfg.max_positions} or less"
            if (Path(cfg.data) / METADATA_FILE).is_file():  # and the data prepared to match
                fitting = dataclasses.replace(settings, max_seq_length=cfg.max_positions,
                                              doc_stride=min(settings.doc_stride, cfg.max_positions // 4),
                                              max_query_length=min(settings.max_query_length,
                                                                   cfg.max_positions // 4))
                fix += f", with data prepared so: {prepare_command(cfg.data, fitting)}"
            raise ValueError(f"squad2 task: {err}: set {fix}") from None
        if (Path(cfg.data) / METADATA_FILE).is_file():  # absent when only predicting (task.data = a BPE dir)
            check_window_settings(cfg.data, QASettings.from_object(cfg), positions=cfg.max_positions)
        dictionary = cls.load_dictionary(dict_path)
        logger.info("dictionary: %d types", len(dictionary))
        return cls(cfg, dictionary)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        path = features_file(self.cfg.data, split)
        if not path.is_file() or not (Path(self.cfg.data) / METADATA_FILE).is_file():
            raise FileNotFoundError(f"squad2 task: {path} or its {METADATA_FILE} not found "
                                    "(made by scripts/prepare_squad2.py)")
        arrays = FeatureArrays.load(path)
        examples, version_2 = None, True
        if examples_file(self.cfg.data, split).is_file():
            squad = load_squad(examples_file(self.cfg.data, split), training=False)
            examples, version_2 = squad.examples, squad.version_2
        self.datasets[split] = SquadFeatureDataset(arrays, self.dictionary.pad(), examples, version_2)
        logger.info("%s: %d windows%s", split, len(arrays), f" of {len(examples)} questions, scored with the "
                    f"{self.metric} metric's EM/F1" if examples is not None else "")
        return self.datasets[split]

    def build_criterion(self, cfg):
        criterion = super().build_criterion(cfg)
        if not isinstance(criterion, SpanQACriterion):
            raise ValueError("the squad2 task trains with criterion span_qa")
        return criterion

    def max_positions(self):
        return self.cfg.max_positions

    @property
    def metric(self) -> str:
        return str(getattr(self.cfg, "metric", "squad"))  # checkpoints from before task.metric: squad

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def valid_step(self, sample, model, criterion):
        model.eval()
        with torch.no_grad():
            start_logits, end_logits = model(**sample["net_input"])
            loss, sample_size, logging_output = criterion.span_loss(start_logits, end_logits, sample)
        logging_output.update(self.score_questions(sample.get("evaluation"), start_logits, end_logits))
        return loss, sample_size, logging_output

    def score_questions(self, evaluation, start_logits, end_logits) -> dict:
        """Sums of EM and F1 (task.metric, 0-1 per question) over the questions of one batch.

        Every validation batch returns these keys, zeros when it has no questions to score (the dummy batch
        of a GPU without data may be a training batch): fairseq all-reduces logging outputs key by key.
        """
        if evaluation is None:
            return {"squad_questions": 0, "squad_em_sum": 0.0, "squad_f1_sum": 0.0, "squad_baseline_sum": 0.0}
        predictions = postprocess_predictions(
            evaluation["examples"], evaluation["features"],
            start_logits.float().cpu().numpy(), end_logits.float().cpu().numpy(),
            version_2_with_negative=evaluation["version_2"], **QASettings.from_object(self.cfg).answers())
        scores = evaluate(self.metric, evaluation["examples"], predictions.answers,
                          version_2=evaluation["version_2"])
        questions = len(evaluation["examples"])
        exact, f1 = headline(self.metric, scores)
        baseline = no_answer_baseline(self.metric, evaluation["examples"], version_2=evaluation["version_2"])
        return {"squad_questions": questions, "squad_em_sum": exact * questions / 100,
                "squad_f1_sum": f1 * questions / 100, "squad_baseline_sum": baseline * questions / 100}

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if not any("squad_questions" in log for log in logging_outputs):
            return
        for key in ("squad_questions", "squad_em_sum", "squad_f1_sum", "squad_baseline_sum"):
            metrics.log_scalar("_" + key, sum(log.get(key, 0) for log in logging_outputs))

        def percentage(key):
            def derive(meters):
                questions = utils.item(meters["_squad_questions"].sum)
                return 100 * utils.item(meters[key].sum) / questions if questions else 0.0
            return derive

        metrics.log_derived("em", percentage("_squad_em_sum"))
        metrics.log_derived("f1", percentage("_squad_f1_sum"))
        metrics.log_derived("baseline_f1", percentage("_squad_baseline_sum"))
