"""Architecture hyper-parameters both ways: a fairseq RoBERTa's args <-> a transformers ``RobertaConfig``,
and the options one side has that the other cannot express (refused with one line, never approximated)."""

from __future__ import annotations

import argparse
from typing import Optional

from fairseq_ext.errors import UserInputError

MASKED_LM, SPAN_QA, ENCODER = "masked_lm", "span_qa", "encoder"  # what the model computes
HF_ARCHITECTURES = {MASKED_LM: "RobertaForMaskedLM", SPAN_QA: "RobertaForQuestionAnswering",
                    ENCODER: "RobertaModel"}
FAIRSEQ_MODELS = {MASKED_LM: "roberta", SPAN_QA: "roberta_span_qa", ENCODER: "roberta"}
# fairseq activation_fn -> HF hidden_act (fairseq's gelu_accurate is the tanh approximation = gelu_new)
ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "gelu_fast": "gelu_new", "relu": "relu",
               "tanh": "tanh", "linear": "linear"}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate",
                  "relu": "relu", "tanh": "tanh", "linear": "linear"}
LAYER_NORM_EPS = 1e-5  # fairseq's LayerNorm
PAD_INDEX = 1  # learned positions start at padding_idx + 1 on both sides
DEFAULT_TOLERANCE = 1e-4  # largest |output difference| a verified conversion may show


def hf_config(kind: str, model, args: argparse.Namespace, vocab_size: int,
              squad_settings: Optional[dict] = None, family: str = "Roberta"):
    """The RobertaConfig of a fairseq model (built, so that every size is the module's own); with
    ``family`` "XLMRoberta" (a SentencePiece model) the XLMRobertaConfig of XLMRobertaFor* (the same
    architecture and weights under XLM-R's name, which AutoTokenizer pairs with its tokenizer)."""
    from transformers import RobertaConfig, XLMRobertaConfig

    encoder = model.encoder.sentence_encoder
    first_layer = encoder.layers[0]
    tied = kind == MASKED_LM and model.encoder.lm_head.weight is encoder.embed_tokens.weight
    config_class = XLMRobertaConfig if family == "XLMRoberta" else RobertaConfig
    return config_class(
        architectures=[family + HF_ARCHITECTURES[kind][len("Roberta"):]],
        vocab_size=vocab_size,
        hidden_size=encoder.embed_tokens.embedding_dim,
        num_hidden_layers=len(encoder.layers),
        num_attention_heads=first_layer.self_attn.num_heads,
        intermediate_size=first_layer.fc1.out_features,
        hidden_act=ACTIVATIONS[getattr(args, "activation_fn", "gelu")],
        hidden_dropout_prob=float(getattr(args, "dropout", 0.1)),
        attention_probs_dropout_prob=float(getattr(args, "attention_dropout", 0.1)),
        max_position_embeddings=encoder.embed_positions.num_embeddings,  # <pad> + 1 offset included
        type_vocab_size=1,
        layer_norm_eps=LAYER_NORM_EPS,
        pad_token_id=PAD_INDEX, bos_token_id=0, eos_token_id=2,
        tie_word_embeddings=tied,
        **({"squad_settings": squad_settings} if squad_settings else {}),
    )


def check_fairseq_structure(kind: str, model, args: argparse.Namespace) -> None:
    """The fairseq options HF's RoBERTa cannot express."""
    from fairseq.modules import LearnedPositionalEmbedding

    encoder = model.encoder.sentence_encoder
    activation = getattr(args, "activation_fn", "gelu")
    problems = []
    if encoder.layer_norm is not None or any(layer.normalize_before for layer in encoder.layers):
        problems.append("pre-layer-norm encoder (encoder_normalize_before)")
    if encoder.layernorm_embedding is None:
        problems.append("no embedding layer norm")
    if encoder.embed_scale != 1.0:
        problems.append("scaled embeddings (no_scale_embedding=False)")
    if not isinstance(encoder.embed_positions, LearnedPositionalEmbedding) \
            or encoder.embed_positions.padding_idx != PAD_INDEX:
        problems.append("positions other than learned ones offset by <pad>")
    if activation not in ACTIVATIONS:
        problems.append(f"activation {activation!r}")
    if kind == MASKED_LM and activation != "gelu":
        problems.append(f"masked-LM head with activation {activation!r} (HF's head uses gelu)")
    if problems:
        raise UserInputError("the checkpoint's architecture has no Hugging Face RoBERTa equivalent: "
                             + "; ".join(problems))


def hf_kind(config) -> str:
    """MASKED_LM, SPAN_QA or ENCODER from a RoBERTa config's architectures, or a one-line refusal."""
    model_type = getattr(config, "model_type", None)
    if model_type != "roberta":
        raise UserInputError(f"the model is a {model_type!r} model, not RoBERTa (model_type 'roberta')")
    architectures = list(getattr(config, "architectures", None) or [HF_ARCHITECTURES[ENCODER]])
    kinds = {name: kind for kind, name in HF_ARCHITECTURES.items()}
    if architectures[0] not in kinds:
        raise UserInputError(f"architecture {architectures[0]} has no fairseq counterpart (supported: "
                             f"{', '.join(HF_ARCHITECTURES.values())})")
    return kinds[architectures[0]]


def check_hf_structure(kind: str, config) -> None:
    """The HF options fairseq's RoBERTa cannot express, each refused with its reason."""
    problems = []
    if config.layer_norm_eps != LAYER_NORM_EPS:
        problems.append(f"layer_norm_eps {config.layer_norm_eps:g} (fairseq's is {LAYER_NORM_EPS:g})")
    if config.hidden_act not in HF_ACTIVATIONS:
        problems.append(f"activation {config.hidden_act!r}")
    elif kind == MASKED_LM and config.hidden_act != "gelu":
        problems.append(f"activation {config.hidden_act!r} with a masked-LM head (fairseq's head would use "
                        "it, HF's uses gelu)")
    position_type = getattr(config, "position_embedding_type", "absolute")
    if position_type != "absolute":
        problems.append(f"position_embedding_type {position_type!r} (fairseq has absolute positions only)")
    if config.is_decoder or config.add_cross_attention:
        problems.append("a decoder (is_decoder / add_cross_attention)")
    if config.pad_token_id != PAD_INDEX:
        problems.append(f"pad_token_id {config.pad_token_id} (fairseq's RoBERTa pads with 1)")
    if config.max_position_embeddings <= PAD_INDEX + 1:
        problems.append(f"max_position_embeddings {config.max_position_embeddings}")
    if problems:
        raise UserInputError("the model has no fairseq RoBERTa equivalent: " + "; ".join(problems))


def fairseq_args(kind: str, config) -> argparse.Namespace:
    """fairseq model args (before the architecture fills the rest) of a checked RoBERTa config."""
    return argparse.Namespace(
        _name=FAIRSEQ_MODELS[kind], arch=FAIRSEQ_MODELS[kind],
        encoder_layers=config.num_hidden_layers,
        encoder_embed_dim=config.hidden_size,
        encoder_ffn_embed_dim=config.intermediate_size,
        encoder_attention_heads=config.num_attention_heads,
        max_positions=config.max_position_embeddings - PAD_INDEX - 1,
        activation_fn=HF_ACTIVATIONS[config.hidden_act],
        dropout=float(config.hidden_dropout_prob),
        attention_dropout=float(config.attention_probs_dropout_prob),
        activation_dropout=0.0,
        pooler_dropout=0.0,
        untie_weights_roberta=kind == MASKED_LM and not config.tie_word_embeddings,
        encoder_normalize_before=False,
        layernorm_embedding=True,
        no_scale_embedding=True,
    )
