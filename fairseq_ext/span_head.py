"""The span head of both sides (fairseq's roberta_span_qa, transformers' RobertaForQuestionAnswering):
``Linear(hidden, 2)`` computed in fp32 whatever the encoder runs in (fp16 or bf16 weights, or autocast),
so that start/end logits, the loss and the validation EM/F1 built on them keep fp32's resolution. The
weights stay where they are (same state dict, same dtype): only the product is fp32."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Float32Linear(torch.nn.Linear):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.autocast(features.device.type, enabled=False):
            return F.linear(features.float(), self.weight.float(),
                            None if self.bias is None else self.bias.float())


def compute_in_fp32(linear: torch.nn.Linear) -> torch.nn.Linear:
    """``linear`` (a model's existing head) computing in fp32 from now on, its parameters untouched."""
    linear.__class__ = Float32Linear
    return linear
