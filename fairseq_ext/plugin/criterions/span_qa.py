"""Extractive QA loss: mean of the start- and end-position cross-entropies, as HF's
``RobertaForQuestionAnswering`` computes it. Unanswerable windows point at position 0 (``<s>``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass


@dataclass
class SpanQACriterionConfig(FairseqDataclass):
    pass


@register_criterion("span_qa", dataclass=SpanQACriterionConfig)
class SpanQACriterion(FairseqCriterion):
    """Loss per window ``(CE_start + CE_end) / 2`` in nats; logs start/end position accuracy.

    Padding positions are excluded from the softmax, so the loss of a window does not depend on how
    much its batch is padded.
    """

    def __init__(self, cfg: SpanQACriterionConfig, task):
        super().__init__(task)
        self.padding_idx = task.source_dictionary.pad()

    def forward(self, model, sample, reduce=True):
        start_logits, end_logits = model(**sample["net_input"])
        return self.span_loss(start_logits, end_logits, sample, reduce=reduce)

    def span_loss(self, start_logits, end_logits, sample, reduce=True):
        """Loss, sample size (windows) and logging output from the model's logits (the task's
        ``valid_step`` also post-processes these logits, so it computes them once and calls this)."""
        padding = sample["net_input"]["src_tokens"].eq(self.padding_idx)
        reduction = "sum" if reduce else "none"
        losses = []
        logging_output = {}
        for name, logits, target in (
            ("start", start_logits, sample["start_positions"]),
            ("end", end_logits, sample["end_positions"]),
        ):
            logits = logits.float().masked_fill(padding, float("-inf"))
            losses.append(F.cross_entropy(logits, target, reduction=reduction))
            logging_output[f"{name}_correct"] = logits.argmax(dim=-1).eq(target).sum().data
        loss = (losses[0] + losses[1]) / 2
        sample_size = sample["start_positions"].numel()
        logging_output.update(
            loss=loss.data, ntokens=sample["ntokens"], nsentences=sample_size, sample_size=sample_size
        )
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss_sum / max(sample_size, 1), sample_size, round=3)
        for name in ("start", "end"):
            correct = sum(log.get(f"{name}_correct", 0) for log in logging_outputs)
            metrics.log_scalar(f"{name}_acc", 100.0 * correct / max(sample_size, 1), sample_size, round=1)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
