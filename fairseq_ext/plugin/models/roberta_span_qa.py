"""RoBERTa with an extractive span head: ``qa_outputs = Linear(hidden, 2)`` on every token's features.

The same structure as Hugging Face's ``RobertaForQuestionAnswering`` (encoder without pooler, one linear
layer giving start and end logits, no dropout before it), so the export is a key rename. The head
computes in fp32 under common.fp16 or common.bf16 (fairseq_ext.span_head).

State dict: ``encoder.sentence_encoder.*`` and ``qa_outputs.{weight,bias}``. The masked-LM head is not
built: span QA reads features only, and an unused head would need DDP's ``find_unused_parameters``.
Loading a masked-LM checkpoint (``checkpoint.restore_file``) therefore drops its ``encoder.lm_head.*``
and keeps the freshly initialised ``qa_outputs`` (BERT init: normal(0, 0.02), zero bias); loading a
checkpoint of this model restores everything.
"""

from __future__ import annotations

import logging

from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta.model import (
    RobertaEncoder,
    RobertaModel,
    base_architecture,
    roberta_large_architecture,
)
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from fairseq.utils import safe_getattr, safe_hasattr
from omegaconf import OmegaConf

from fairseq_ext.span_head import Float32Linear

logger = logging.getLogger(__name__)


class SpanQAEncoder(RobertaEncoder):
    """A RoBERTa encoder without the masked-LM head."""

    def build_lm_head(self, embed_dim, output_dim, activation_fn, weight):
        return None


@register_model("roberta_span_qa")
class RobertaSpanQAModel(RobertaModel):
    def __init__(self, args, encoder):
        super().__init__(args, encoder)
        self.qa_outputs = Float32Linear(args.encoder_embed_dim, 2)
        self.qa_outputs.apply(init_bert_params)

    @classmethod
    def build_model(cls, args, task):
        # RobertaModel.build_model with the head-less encoder
        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, False)
        base_architecture(args)
        if not safe_hasattr(args, "max_positions"):
            args.max_positions = safe_getattr(args, "tokens_per_sample", None) or task.max_positions()
        encoder = SpanQAEncoder(args, task.source_dictionary)
        if OmegaConf.is_config(args):
            OmegaConf.set_struct(args, True)
        return cls(args, encoder)

    def forward(self, src_tokens, return_all_hiddens=False, **unused):
        """Start and end logits, each ``(batch, src_len)``, fp32 (padding positions included, as in HF)."""
        features, _ = self.encoder.extract_features(src_tokens, return_all_hiddens=return_all_hiddens)
        logits = self.qa_outputs(features)
        start_logits, end_logits = logits.unbind(dim=-1)
        return start_logits, end_logits

    def upgrade_state_dict_named(self, state_dict, name):
        super().upgrade_state_dict_named(state_dict, name)
        prefix = name + "." if name != "" else ""
        dropped = [k for k in state_dict if k.startswith(prefix + "encoder.lm_head.")]
        for key in dropped:
            del state_dict[key]
        if dropped:
            logger.info("dropped the masked-LM head (%d tensors) of the checkpoint", len(dropped))
        for key, value in self.qa_outputs.state_dict().items():
            if prefix + "qa_outputs." + key not in state_dict:
                logger.info("qa_outputs.%s not in the checkpoint: keeping its fresh initialisation", key)
                state_dict[prefix + "qa_outputs." + key] = value


@register_model_architecture("roberta_span_qa", "roberta_span_qa")
def span_qa_base_architecture(args):
    base_architecture(args)


@register_model_architecture("roberta_span_qa", "roberta_span_qa_base")
def span_qa_roberta_base_architecture(args):
    base_architecture(args)


@register_model_architecture("roberta_span_qa", "roberta_span_qa_large")
def span_qa_roberta_large_architecture(args):
    roberta_large_architecture(args)


@register_model_architecture("roberta_span_qa", "roberta_span_qa_tiny")
def span_qa_tiny_architecture(args):
    """configs/pretraining/tiny.yaml's model: 2 layers, 64 wide (tests and the CPU demo)."""
    args.encoder_layers = safe_getattr(args, "encoder_layers", 2)
    args.encoder_embed_dim = safe_getattr(args, "encoder_embed_dim", 64)
    args.encoder_ffn_embed_dim = safe_getattr(args, "encoder_ffn_embed_dim", 128)
    args.encoder_attention_heads = safe_getattr(args, "encoder_attention_heads", 2)
    base_architecture(args)
