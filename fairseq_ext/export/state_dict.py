"""Tensor names and contents both ways between fairseq's RoBERTa and transformers' ``Roberta*`` models.

Both directions fail on any tensor they do not know, so nothing is dropped unnoticed. What HF has and
fairseq has not is folded in exactly: the token-type embedding row 0, which HF adds to every position,
becomes part of the positional embeddings (rows of other token types are never used by fairseq's inputs
and are reported); alias rows (see tokenizer_files) are dropped.
"""

from __future__ import annotations

import re

import torch

from fairseq_ext.errors import UserInputError
from fairseq_ext.export.config import ENCODER, MASKED_LM
from fairseq_ext.export.tokenizer_files import UNK_INDEX, ExportVocabulary

ABSENT_TOKEN_LOGIT_BIAS = -1e4  # alias ids are never predicted (exp(-1e4) == 0 in any float format)
LAYER_NAMES = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.output.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "output.LayerNorm",
}
TOP_LEVEL_NAMES = {
    "encoder.sentence_encoder.embed_tokens.weight": "roberta.embeddings.word_embeddings.weight",
    "encoder.sentence_encoder.embed_positions.weight": "roberta.embeddings.position_embeddings.weight",
    "encoder.sentence_encoder.layernorm_embedding.weight": "roberta.embeddings.LayerNorm.weight",
    "encoder.sentence_encoder.layernorm_embedding.bias": "roberta.embeddings.LayerNorm.bias",
    "encoder.lm_head.dense.weight": "lm_head.dense.weight",
    "encoder.lm_head.dense.bias": "lm_head.dense.bias",
    "encoder.lm_head.layer_norm.weight": "lm_head.layer_norm.weight",
    "encoder.lm_head.layer_norm.bias": "lm_head.layer_norm.bias",
    "encoder.lm_head.weight": "lm_head.decoder.weight",
    "encoder.lm_head.bias": "lm_head.bias",
    "qa_outputs.weight": "qa_outputs.weight",
    "qa_outputs.bias": "qa_outputs.bias",
}
FAIRSEQ_LAYER_KEY = re.compile(r"encoder\.sentence_encoder\.layers\.(\d+)\.(.+)\.(weight|bias)")
HF_LAYER_KEY = re.compile(r"roberta\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)")
NOT_WEIGHTS = re.compile(r"(^|\.)(version|_float_tensor)$")  # bookkeeping buffers of fairseq modules
HF_EMBEDDINGS = "roberta.embeddings.word_embeddings.weight"
HF_POSITIONS = "roberta.embeddings.position_embeddings.weight"
HF_TOKEN_TYPES = "roberta.embeddings.token_type_embeddings.weight"


def hf_state_dict(fairseq_state: dict, kind: str, vocabulary: ExportVocabulary, tied: bool) -> dict:
    """The HF model's tensors from the fairseq model's own (upgraded) state dict."""
    hf_state, unknown = {}, []
    for key, tensor in fairseq_state.items():
        if NOT_WEIGHTS.search(key):
            continue
        layer = FAIRSEQ_LAYER_KEY.fullmatch(key)
        if layer and layer.group(2) in LAYER_NAMES:
            hf_key = f"roberta.encoder.layer.{layer.group(1)}.{LAYER_NAMES[layer.group(2)]}.{layer.group(3)}"
        elif key in TOP_LEVEL_NAMES:
            hf_key = TOP_LEVEL_NAMES[key]
        else:
            unknown.append(key)
            continue
        hf_state[hf_key] = tensor.detach().float().clone()
    _refuse_unknown(unknown, "the checkpoint has tensors with no Hugging Face RoBERTa counterpart")

    aliases = vocabulary.aliases
    hf_state[HF_EMBEDDINGS] = _with_alias_rows(hf_state[HF_EMBEDDINGS], aliases)
    hf_state[HF_TOKEN_TYPES] = torch.zeros(1, hf_state[HF_EMBEDDINGS].shape[1])
    if kind == MASKED_LM:
        bias = hf_state["lm_head.bias"]
        hf_state["lm_head.bias"] = torch.cat([bias, bias.new_full((aliases,), ABSENT_TOKEN_LOGIT_BIAS)])
        hf_state["lm_head.decoder.bias"] = hf_state["lm_head.bias"]
        if tied:
            hf_state["lm_head.decoder.weight"] = hf_state[HF_EMBEDDINGS]
        else:
            hf_state["lm_head.decoder.weight"] = _with_alias_rows(hf_state["lm_head.decoder.weight"], aliases)
    return hf_state


def _with_alias_rows(matrix: torch.Tensor, aliases: int) -> torch.Tensor:
    return torch.cat([matrix, matrix[UNK_INDEX].expand(aliases, -1)])


FAIRSEQ_NAMES = {hf: fairseq for fairseq, hf in TOP_LEVEL_NAMES.items()}
FAIRSEQ_LAYER_NAMES = {hf: fairseq for fairseq, hf in LAYER_NAMES.items()}


def fairseq_state_dict(hf_state: dict, kind: str, dictionary_size: int) -> tuple[dict, list[str]]:
    """(fairseq tensors, what had no place in fairseq) from a HF model's state dict. The fairseq tensors
    still lack what the HF model has not: the masked-LM head of an ENCODER model (left to the caller)."""
    # a bare RobertaModel's names lack the "roberta." of the models with a head
    hf_state = {key if key.startswith(("roberta.", "lm_head.", "qa_outputs.")) else f"roberta.{key}": tensor
                for key, tensor in hf_state.items()}
    state, unknown, dropped = {}, [], []
    for key, tensor in hf_state.items():
        layer = HF_LAYER_KEY.fullmatch(key)
        if key in (HF_TOKEN_TYPES, "roberta.embeddings.position_ids", "roberta.embeddings.token_type_ids",
                   "lm_head.decoder.bias"):  # folded below / buffers / a second name of lm_head.bias
            continue
        if key.startswith("roberta.pooler."):
            if not dropped or not dropped[0].startswith("pooler"):
                dropped.insert(0, "pooler (fairseq's RoBERTa has none)")
            continue
        if layer and layer.group(2) in FAIRSEQ_LAYER_NAMES:
            fairseq_key = (f"encoder.sentence_encoder.layers.{layer.group(1)}."
                           f"{FAIRSEQ_LAYER_NAMES[layer.group(2)]}.{layer.group(3)}")
        elif key in FAIRSEQ_NAMES:
            fairseq_key = FAIRSEQ_NAMES[key]
        else:
            unknown.append(key)
            continue
        state[fairseq_key] = tensor.detach().clone()
    _refuse_unknown(unknown, "the model has tensors with no fairseq RoBERTa counterpart")

    embeddings = "encoder.sentence_encoder.embed_tokens.weight"
    state[embeddings] = state[embeddings][:dictionary_size].clone()
    if kind == MASKED_LM:
        state["encoder.lm_head.bias"] = state["encoder.lm_head.bias"][:dictionary_size].clone()
        state["encoder.lm_head.weight"] = state["encoder.lm_head.weight"][:dictionary_size].clone()
    token_types = hf_state.get(HF_TOKEN_TYPES)
    if token_types is not None:
        positions = "encoder.sentence_encoder.embed_positions.weight"
        if token_types[0].any():  # adding zeros would be exact too, but would turn -0.0 into 0.0
            state[positions] = state[positions] + token_types[0]
        if token_types.shape[0] > 1:
            dropped.append(f"token-type embedding rows 1..{token_types.shape[0] - 1} (fairseq's inputs are "
                           "all token type 0)")
    if kind == ENCODER:
        state = {key: tensor for key, tensor in state.items() if not key.startswith("encoder.lm_head.")}
    return state, dropped


def _refuse_unknown(unknown: list[str], message: str) -> None:
    if unknown:
        raise UserInputError(f"{message}: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
