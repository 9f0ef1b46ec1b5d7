"""Export a fairseq RoBERTa checkpoint to a Hugging Face model directory, verified against fairseq.

    python convert/fairseq_to_hf.py --checkpoint runs/squad2/checkpoint_best.pt --gpt2-bpe gpt2_bpe \\
        --out hf/roberta-squad2

Span-QA checkpoints (model ``roberta_span_qa``) become ``RobertaForQuestionAnswering``, masked-LM ones
(fairseq ``roberta``) ``RobertaForMaskedLM``; every size comes from the checkpoint. The tokenizer is
GPT-2's byte-level BPE re-indexed through the fairseq dictionary, so a HF token id is the fairseq index.

GPT-2 tokens missing from the dictionary (a dictionary built from a corpus lacks most of them) are
fairseq's ``<unk>``. They cannot simply get ``<unk>``'s id in the tokenizer: HF ``tokenizers`` applies
merges by token id, so several tokens sharing one id would make merges fire on the wrong pieces and
change the tokenization of words the dictionary does know. They get *alias* ids after the dictionary
instead (``len(dictionary)``, +1, ...), whose embedding rows are copies of ``<unk>``'s and whose
masked-LM logits are pushed to -1e4: the model computes exactly what fairseq computes for ``<unk>``.
With the official ``dict.txt`` there are no aliases.

Verification (on by default) reloads the written directory with ``from_pretrained`` and compares it with
the fairseq model on real sentences (masked LM) or question/context pairs (span QA): token ids must equal
fairseq's (aliases counted as ``<unk>``) and logits agree within ``--tolerance``, else nothing is written
and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from evaluate_hf import DEFAULT_SETTINGS
from fairseq import models as fairseq_models
from fairseq.data import Dictionary, data_utils
from fairseq.models.roberta import RobertaModel
from fairseq.modules import LearnedPositionalEmbedding
from transformers import (
    AddedToken,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaTokenizer,
)
from transformers.utils import logging as hf_logging

from fairseq_ext.checkpoints import load_checkpoint, model_config
from fairseq_ext.cli import UserInputError, existing_file, run_cli
from fairseq_ext.plugin.models.roberta_span_qa import RobertaSpanQAModel
from fairseq_ext.tokenizer import DictionaryTokenizer, Gpt2Bpe, find_tokenizer_dir

SPECIAL_SYMBOLS = ("<s>", "<pad>", "</s>", "<unk>")  # fairseq Dictionary indices 0-3 = HF RoBERTa's
MASK = "<mask>"
UNK_INDEX = 3
ABSENT_TOKEN_LOGIT_BIAS = -1e4  # alias ids are never predicted (exp(-1e4) == 0 in any float format)
DEFAULT_TOLERANCE = 1e-4
MASKED_LM, SPAN_QA = "masked_lm", "span_qa"
HF_CLASSES = {MASKED_LM: RobertaForMaskedLM, SPAN_QA: RobertaForQuestionAnswering}
HF_AUTO_CLASSES = {MASKED_LM: AutoModelForMaskedLM, SPAN_QA: AutoModelForQuestionAnswering}
# fairseq activation_fn -> HF hidden_act (fairseq's gelu_accurate is the tanh approximation = gelu_new)
ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "gelu_fast": "gelu_new", "relu": "relu",
               "tanh": "tanh", "linear": "linear"}
OUTPUT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt",
                "tokenizer_config.json", "special_tokens_map.json")

# Verification inputs: real text with capitals, digits, punctuation, non-ASCII and odd spacing.
SAMPLE_SENTENCES = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region "
    "in France.",
    "Paris is the capital and most populous city of France, with an estimated population of 2,102,650 "
    "residents as of 1 January 2023.",
    "Beyoncé Giselle Knowles-Carter (born September 4, 1981) is an American singer, songwriter and actress.",
    "  Leading spaces, \"quotes\", an em dash — and a newline\nshould tokenize identically. ",
    "Photosynthesis converts light energy into chemical energy; its overall equation is "
    "6CO2 + 6H2O → C6H12O6 + 6O2.",
)
SAMPLE_QUESTIONS = (
    ("In what country is Normandy located?", SAMPLE_SENTENCES[0]),
    ("When was Beyoncé born?", SAMPLE_SENTENCES[2]),
    ("  What does photosynthesis convert light energy into?", SAMPLE_SENTENCES[4]),
    ("How many residents did Paris have in 2023?", SAMPLE_SENTENCES[1]),
)


# ---------------------------------------------------------------------------------------------- vocabulary

@dataclass
class ExportVocabulary:
    """The HF vocabulary: the fairseq dictionary's symbols as GPT-2 token strings, then the aliases."""

    tokens: list[str]  # HF id -> token string
    dictionary_size: int  # ids below this are fairseq indices
    absent_gpt2_ids: list[int]  # GPT-2 tokens absent from the dictionary, aliased to dictionary_size + i
    literal_symbols: list[str] = field(default_factory=list)  # symbols that are no GPT-2 id (madeupword...)

    @property
    def vocab(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.tokens)}

    def as_fairseq_indices(self, ids: Sequence[int]) -> list[int]:
        """HF ids with the alias ids folded back to fairseq's <unk>."""
        return [UNK_INDEX if index >= self.dictionary_size else index for index in ids]


def load_dictionary(path: Path) -> Dictionary:
    """The fairseq dictionary as the RoBERTa tasks use it: dict.txt plus <mask>."""
    existing_file(path, "dictionary (dict.txt of the model's training data, see --dict)")
    try:
        dictionary = Dictionary.load(str(path))
    except (ValueError, RuntimeError) as err:
        raise UserInputError(f"cannot read dictionary {path}: {err}") from None
    dictionary.add_symbol(MASK)
    return dictionary


def build_export_vocabulary(symbols: Sequence[str], gpt2_tokens: Sequence[str]) -> ExportVocabulary:
    """``symbols``: the dictionary in index order (specials first, ``<mask>`` last); ``gpt2_tokens``: GPT-2's
    token strings in id order (encoder.json)."""
    if tuple(symbols[:len(SPECIAL_SYMBOLS)]) != SPECIAL_SYMBOLS or symbols[-1] != MASK:
        raise UserInputError(f"dictionary does not start with {' '.join(SPECIAL_SYMBOLS)} and end with "
                             f"{MASK} (not a fairseq RoBERTa dictionary)")
    tokens, literal_symbols, present = [], [], set()
    for symbol in symbols:
        if symbol.isdigit() and int(symbol) < len(gpt2_tokens):
            present.add(int(symbol))
            tokens.append(gpt2_tokens[int(symbol)])
        else:
            if symbol not in SPECIAL_SYMBOLS and symbol != MASK:
                literal_symbols.append(symbol)
            tokens.append(symbol)
    if not present:
        raise UserInputError("the dictionary holds no GPT-2 token ids: it was not built from GPT-2 BPE text")
    absent = [gpt2_id for gpt2_id in range(len(gpt2_tokens)) if gpt2_id not in present]
    tokens.extend(gpt2_tokens[gpt2_id] for gpt2_id in absent)
    if len(set(tokens)) != len(tokens):
        seen = set()
        duplicate = next(token for token in tokens if token in seen or seen.add(token))
        raise UserInputError(f"dictionary symbol {duplicate!r} is also a GPT-2 token: the two cannot share "
                             "one tokenizer vocabulary")
    return ExportVocabulary(tokens=tokens, dictionary_size=len(symbols), absent_gpt2_ids=absent,
                            literal_symbols=literal_symbols)


def read_gpt2_tokens(bpe_dir: Path) -> list[str]:
    encoder = json.loads((bpe_dir / "encoder.json").read_text(encoding="utf-8"))
    tokens = sorted(encoder, key=encoder.get)
    if [encoder[token] for token in tokens] != list(range(len(tokens))):
        raise UserInputError(f"{bpe_dir / 'encoder.json'}: ids are not 0..{len(tokens) - 1}")
    return tokens


def read_merges(vocab_bpe: Path) -> list[tuple[str, str]]:
    lines = vocab_bpe.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split()) for line in lines if line and not line.startswith("#version")]


def save_tokenizer(vocabulary: ExportVocabulary, bpe_dir: Path, max_positions: int, out_dir: Path) -> None:
    """tokenizer.json + tokenizer_config.json (transformers), and vocab.json, merges.txt,
    special_tokens_map.json for older transformers and other readers."""
    # <mask> swallows the space before it, as fairseq's fill_mask encodes "x <mask>" (and roberta-base does)
    mask = AddedToken(MASK, lstrip=True, rstrip=False, normalized=False, special=True)
    tokenizer = RobertaTokenizer(vocab=vocabulary.vocab, merges=read_merges(bpe_dir / "vocab.bpe"),
                                 mask_token=mask, model_max_length=max_positions)
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "vocab.json").write_text(json.dumps(vocabulary.vocab, ensure_ascii=False), encoding="utf-8")
    shutil.copyfile(bpe_dir / "vocab.bpe", out_dir / "merges.txt")
    special_tokens = {name: getattr(tokenizer, name) for name in
                      ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token")}
    special_tokens["mask_token"] = {"content": MASK, "lstrip": True, "rstrip": False, "normalized": False,
                                    "single_word": False}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2) + "\n")


# --------------------------------------------------------------------------------------------- fairseq side

class _DictionaryTask:
    """What RobertaModel.build_model needs from a task: the dictionary (the data directory is not needed)."""

    def __init__(self, dictionary: Dictionary, max_positions: int):
        self.source_dictionary = self.target_dictionary = dictionary
        self._max_positions = max_positions

    def max_positions(self) -> int:
        return self._max_positions


@dataclass
class FairseqRoberta:
    model: RobertaModel  # eval mode, fp32, legacy names already upgraded by fairseq
    kind: str  # MASKED_LM or SPAN_QA
    args: argparse.Namespace  # the model's hyper-parameters as fairseq completed them
    dropped: list[str]  # what the checkpoint holds that the HF model cannot (reported, not exported)
    squad_settings: Optional[dict] = None  # the squad2 task's windows and post-processing, for evaluate_hf


def checkpoint_model_args(state: dict, checkpoint: Path) -> argparse.Namespace:
    args = model_config(state)
    name = args.get("_name") or args.get("arch")
    model_class = fairseq_models.ARCH_MODEL_REGISTRY.get(name) or fairseq_models.MODEL_REGISTRY.get(name)
    if model_class is None or not issubclass(model_class, RobertaModel):
        raise UserInputError(f"{checkpoint}: not a RoBERTa checkpoint (model {name!r})")
    bpe = (state.get("cfg") or {}).get("bpe") or {}
    bpe_name = bpe.get("_name") if isinstance(bpe, dict) else None
    if bpe_name not in (None, "gpt2"):
        raise UserInputError(f"{checkpoint}: its tokenizer is {bpe_name!r}; only GPT-2 BPE is supported")
    return argparse.Namespace(**args)


def load_fairseq_roberta(state: dict, checkpoint: Path, dictionary: Dictionary) -> FairseqRoberta:
    """The fairseq model of a loaded checkpoint (``state``), for export and verification."""
    args = checkpoint_model_args(state, checkpoint)
    embedding, positions = (_tensor_ending(state["model"], f"sentence_encoder.{name}.weight")
                            for name in ("embed_tokens", "embed_positions"))
    if embedding is None or positions is None:
        raise UserInputError(f"{checkpoint}: no RoBERTa token and position embeddings in the checkpoint")
    if embedding.shape[0] != len(dictionary):
        raise UserInputError(
            f"{checkpoint}: the embedding has {embedding.shape[0]} rows but the dictionary gives "
            f"{len(dictionary)} symbols with <mask>: pass the dict.txt the model was trained with (--dict)")
    # fine-tuning configs may leave the model's max_positions to the task: the table has the number
    max_positions = positions.shape[0] - dictionary.pad() - 1
    model = fairseq_models.build_model(args, _DictionaryTask(dictionary, max_positions))
    kind = SPAN_QA if isinstance(model, RobertaSpanQAModel) else MASKED_LM
    dropped = _parts_without_hf_counterpart(state["model"], kind)  # before loading deletes them
    try:
        model.load_state_dict(state["model"], strict=True, model_cfg=args)
    except RuntimeError as err:
        raise UserInputError(f"{checkpoint}: its tensors do not fit a RoBERTa model "
                             f"({str(err).splitlines()[-1].strip()})") from None
    return FairseqRoberta(model=model.float().eval(), kind=kind, args=args, dropped=dropped,
                          squad_settings=squad_task_settings(state) if kind == SPAN_QA else None)


def squad_task_settings(state: dict) -> Optional[dict]:
    """The squad2 task's window and answer settings the model was fine-tuned with (None for other tasks)."""
    task = (state.get("cfg") or {}).get("task") or {}
    if not isinstance(task, dict) or task.get("_name") != "squad2":
        return None
    return {name: task[name] for name in DEFAULT_SETTINGS if name in task}


def _tensor_ending(tensors: dict, suffix: str) -> Optional[torch.Tensor]:
    """The tensor whose name ends with ``suffix`` (encoder.* or the legacy decoder.* prefix)."""
    return next((tensor for key, tensor in tensors.items() if key.endswith(suffix)), None)


def _parts_without_hf_counterpart(tensors: dict, kind: str) -> list[str]:
    """What fairseq itself drops on loading (and so the export does not have): sentence-classification
    heads, and a masked-LM head left in a span-QA checkpoint."""
    heads = sorted({key.split(".")[1] for key in tensors if key.startswith("classification_heads.")})
    parts = [f"classification head {name!r}" for name in heads]
    if kind == SPAN_QA and any(".lm_head." in key for key in tensors):
        parts.append("masked-LM head")
    return parts


def fairseq_logits(roberta: FairseqRoberta, batch: torch.Tensor) -> list[torch.Tensor]:
    """Masked LM: [logits]; span QA: [start logits, end logits]."""
    with torch.no_grad():
        if roberta.kind == SPAN_QA:
            return list(roberta.model(batch))
        return [roberta.model(batch)[0]]


# ------------------------------------------------------------------------------------------------- HF model

def check_structure(roberta: FairseqRoberta) -> None:
    """The fairseq options HF's RoBERTa cannot express: refused rather than exported wrongly."""
    encoder = roberta.model.encoder.sentence_encoder
    activation = getattr(roberta.args, "activation_fn", "gelu")
    problems = []
    if encoder.layer_norm is not None or any(layer.normalize_before for layer in encoder.layers):
        problems.append("pre-layer-norm encoder (encoder_normalize_before)")
    if encoder.layernorm_embedding is None:
        problems.append("no embedding layer norm")
    if encoder.embed_scale != 1.0:
        problems.append("scaled embeddings (no_scale_embedding=False)")
    if not isinstance(encoder.embed_positions, LearnedPositionalEmbedding) \
            or encoder.embed_positions.padding_idx != 1:
        problems.append("positions other than learned ones offset by <pad>")
    if activation not in ACTIVATIONS:
        problems.append(f"activation {activation!r}")
    if roberta.kind == MASKED_LM and activation != "gelu":
        problems.append(f"masked-LM head with activation {activation!r} (HF's head uses gelu)")
    if problems:
        raise UserInputError("the checkpoint's architecture has no Hugging Face RoBERTa equivalent: "
                             + "; ".join(problems))


def hf_config(roberta: FairseqRoberta, vocabulary: ExportVocabulary) -> RobertaConfig:
    encoder = roberta.model.encoder.sentence_encoder
    first_layer = encoder.layers[0]
    tied = roberta.kind == MASKED_LM and roberta.model.encoder.lm_head.weight is encoder.embed_tokens.weight
    return RobertaConfig(
        architectures=[HF_CLASSES[roberta.kind].__name__],
        vocab_size=len(vocabulary.tokens),
        hidden_size=encoder.embed_tokens.embedding_dim,
        num_hidden_layers=len(encoder.layers),
        num_attention_heads=first_layer.self_attn.num_heads,
        intermediate_size=first_layer.fc1.out_features,
        hidden_act=ACTIVATIONS[getattr(roberta.args, "activation_fn", "gelu")],
        hidden_dropout_prob=float(getattr(roberta.args, "dropout", 0.1)),
        attention_probs_dropout_prob=float(getattr(roberta.args, "attention_dropout", 0.1)),
        # fairseq's learned positions start at padding_idx + 1: HF's RoBERTa has the same offset
        max_position_embeddings=encoder.embed_positions.num_embeddings,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
        tie_word_embeddings=tied,
        **({"squad_settings": roberta.squad_settings} if roberta.squad_settings else {}),
    )


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
LAYER_KEY = re.compile(r"encoder\.sentence_encoder\.layers\.(\d+)\.(.+)\.(weight|bias)")
# bookkeeping buffers of fairseq modules, not weights
NOT_WEIGHTS = re.compile(r"(^|\.)(version|_float_tensor)$")


def hf_state_dict(roberta: FairseqRoberta, vocabulary: ExportVocabulary, config: RobertaConfig) -> dict:
    """The HF model's tensors, from the fairseq model's own (upgraded) state dict; fails on any tensor it
    does not know, so that nothing is dropped unnoticed."""
    hf_state, unknown = {}, []
    for key, tensor in roberta.model.state_dict().items():
        if NOT_WEIGHTS.search(key):
            continue
        layer = LAYER_KEY.fullmatch(key)
        if layer and layer.group(2) in LAYER_NAMES:
            hf_key = f"roberta.encoder.layer.{layer.group(1)}.{LAYER_NAMES[layer.group(2)]}.{layer.group(3)}"
        elif key in TOP_LEVEL_NAMES:
            hf_key = TOP_LEVEL_NAMES[key]
        else:
            unknown.append(key)
            continue
        hf_state[hf_key] = tensor.detach().float().clone()
    if unknown:
        raise UserInputError(f"the checkpoint has tensors with no Hugging Face RoBERTa counterpart: "
                             f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")

    aliases = len(vocabulary.absent_gpt2_ids)
    embeddings = hf_state["roberta.embeddings.word_embeddings.weight"]
    hf_state["roberta.embeddings.word_embeddings.weight"] = _with_alias_rows(embeddings, aliases)
    hf_state["roberta.embeddings.token_type_embeddings.weight"] = torch.zeros(1, config.hidden_size)
    if roberta.kind == MASKED_LM:
        bias = hf_state["lm_head.bias"]
        hf_state["lm_head.bias"] = torch.cat([bias, bias.new_full((aliases,), ABSENT_TOKEN_LOGIT_BIAS)])
        hf_state["lm_head.decoder.bias"] = hf_state["lm_head.bias"]
        if config.tie_word_embeddings:
            hf_state["lm_head.decoder.weight"] = hf_state["roberta.embeddings.word_embeddings.weight"]
        else:
            hf_state["lm_head.decoder.weight"] = _with_alias_rows(hf_state["lm_head.decoder.weight"], aliases)
    return hf_state


def _with_alias_rows(matrix: torch.Tensor, aliases: int) -> torch.Tensor:
    return torch.cat([matrix, matrix[UNK_INDEX].expand(aliases, -1)])


def build_hf_model(roberta: FairseqRoberta, vocabulary: ExportVocabulary):
    config = hf_config(roberta, vocabulary)
    model = HF_CLASSES[roberta.kind](config)
    model.load_state_dict(hf_state_dict(roberta, vocabulary, config), strict=True)
    return model.eval()


# ------------------------------------------------------------------------------------------- verification

@dataclass
class Verification:
    sequences: int
    tokens: int
    alias_tokens: int  # tokens absent from the dictionary (alias ids on the HF side, <unk> in fairseq)
    id_mismatches: list[str]
    max_logit_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return not self.id_mismatches and self.max_logit_diff <= self.tolerance

    def summary(self) -> str:
        ids = ("ids identical" if not self.id_mismatches
               else f"ids differ in {len(self.id_mismatches)} sequence(s): {'; '.join(self.id_mismatches)}")
        return (f"{self.sequences} sequences, {self.tokens} tokens ({self.alias_tokens} absent from the "
                f"dictionary): {ids}; max |logit difference| {self.max_logit_diff:.2e} "
                f"(tolerance {self.tolerance:.0e})")


def fairseq_ids(dictionary_bpe: DictionaryTokenizer, text: str, pair: Optional[str] = None) -> list[int]:
    """fairseq's encoding of a sequence (``<s> a </s>``) or pair (``<s> a </s></s> b </s>``)."""
    ids = [0, *dictionary_bpe.encode_with_offsets(text)[0], 2]
    if pair is not None:
        ids += [2, *dictionary_bpe.encode_with_offsets(pair)[0], 2]
    return ids


def verify_export(out_dir: Path, roberta: FairseqRoberta, dictionary_bpe: DictionaryTokenizer,
                  vocabulary: ExportVocabulary, tolerance: float = DEFAULT_TOLERANCE) -> Verification:
    """The written directory, loaded as users load it, against the fairseq model on the sample inputs."""
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    model = HF_AUTO_CLASSES[roberta.kind].from_pretrained(str(out_dir)).eval()
    if roberta.kind == SPAN_QA:
        inputs = [(question.lstrip(), context) for question, context in SAMPLE_QUESTIONS]
        encoded = tokenizer([q for q, _ in inputs], [c for _, c in inputs], padding=True, return_tensors="pt")
        expected = [fairseq_ids(dictionary_bpe, q, c) for q, c in inputs]
    else:
        inputs = list(SAMPLE_SENTENCES)
        encoded = tokenizer(inputs, padding=True, return_tensors="pt")
        expected = [fairseq_ids(dictionary_bpe, text) for text in inputs]

    mismatches, lengths = [], []
    for index, (hf_row, mask, fairseq_row) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"],
                                                            expected)):
        hf_ids = vocabulary.as_fairseq_indices(hf_row[mask.bool()].tolist())
        lengths.append(len(hf_ids))
        if hf_ids != fairseq_row:
            first = next((i for i, (a, b) in enumerate(zip(hf_ids, fairseq_row)) if a != b),
                         min(len(hf_ids), len(fairseq_row)))
            mismatches.append(f"#{index} from token {first}: HF {hf_ids[first:first + 5]} "
                              f"fairseq {fairseq_row[first:first + 5]}")

    max_diff = float("inf")
    if not mismatches:
        batch = data_utils.collate_tokens([torch.tensor(ids) for ids in expected], pad_idx=1)
        with torch.no_grad():
            output = model(**encoded)
        hf_outputs = ([output.start_logits, output.end_logits] if roberta.kind == SPAN_QA
                      else [output.logits[..., :vocabulary.dictionary_size]])
        real = encoded["attention_mask"].bool()
        max_diff = max(float((hf[real] - fs[real]).abs().max())
                       for hf, fs in zip(hf_outputs, fairseq_logits(roberta, batch)))
    aliases = sum(int((row[mask.bool()] >= vocabulary.dictionary_size).sum())
                  for row, mask in zip(encoded["input_ids"], encoded["attention_mask"]))
    return Verification(sequences=len(expected), tokens=sum(lengths), alias_tokens=aliases,
                        id_mismatches=mismatches, max_logit_diff=max_diff, tolerance=tolerance)


# ------------------------------------------------------------------------------------------------- export

@dataclass
class ExportReport:
    kind: str
    config: RobertaConfig
    dictionary: Path
    vocabulary: ExportVocabulary
    dropped: list[str]
    verification: Optional[Verification]


def default_dictionary(checkpoint_state: dict, bpe_dir: Path) -> Path:
    """The dict.txt of the checkpoint's training data when that directory is still there, else the
    official one in the GPT-2 BPE directory."""
    task = (checkpoint_state.get("cfg") or {}).get("task") or {}
    data = task.get("data") if isinstance(task, dict) else None
    if data is None and checkpoint_state.get("args") is not None:
        data = getattr(checkpoint_state["args"], "data", None)
    if data:
        candidate = Path(str(data).split(os.pathsep)[0]) / "dict.txt"
        if candidate.is_file():
            return candidate
    return bpe_dir / "dict.txt"


def export(checkpoint: Path, bpe_dir: Path, out_dir: Path, dictionary_path: Optional[Path] = None,
           force: bool = False, verify: bool = True, tolerance: float = DEFAULT_TOLERANCE) -> ExportReport:
    """Writes the HF directory ``out_dir`` (atomically: a temporary sibling renamed at the end). A failed
    verification raises VerificationError and leaves ``out_dir`` untouched."""
    checkpoint = existing_file(checkpoint, "checkpoint")
    if out_dir.exists() and not force:
        raise UserInputError(f"{out_dir} exists: pass --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"{out_dir} exists and is not a directory")
    bpe_dir = find_tokenizer_dir(bpe_dir)
    state = load_checkpoint(checkpoint)
    if dictionary_path is None:
        dictionary_path = default_dictionary(state, bpe_dir)
    dictionary = load_dictionary(dictionary_path)
    roberta = load_fairseq_roberta(state, checkpoint, dictionary)
    check_structure(roberta)
    vocabulary = build_export_vocabulary(dictionary.symbols, read_gpt2_tokens(bpe_dir))
    hf_model = build_hf_model(roberta, vocabulary)
    config = hf_model.config

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        hf_model.save_pretrained(str(staging))
        del hf_model  # verification reloads it from disk, as users will
        max_positions = roberta.model.encoder.sentence_encoder.embed_positions.max_positions
        save_tokenizer(vocabulary, bpe_dir, max_positions, staging)
        verification = None
        if verify:
            dictionary_bpe = Gpt2Bpe.from_dir(bpe_dir).to_dictionary(dictionary.symbols, dictionary.unk())
            verification = verify_export(staging, roberta, dictionary_bpe, vocabulary, tolerance)
            if not verification.ok:
                raise VerificationError(verification)
        _replace_directory(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return ExportReport(kind=roberta.kind, config=config, dictionary=dictionary_path,
                        vocabulary=vocabulary, dropped=roberta.dropped, verification=verification)


class VerificationError(Exception):
    def __init__(self, verification: Verification):
        super().__init__(verification.summary())
        self.verification = verification


def _replace_directory(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    previous = out_dir.with_name(f".{out_dir.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    out_dir.rename(previous)
    staging.rename(out_dir)
    shutil.rmtree(previous)


def describe(report: ExportReport) -> list[str]:
    config, vocabulary = report.config, report.vocabulary
    model = HF_CLASSES[report.kind].__name__
    lines = [
        f"model: {model}, {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        f"{config.num_attention_heads} heads, ffn {config.intermediate_size}, "
        f"max positions {config.max_position_embeddings - 2}, activation {config.hidden_act}",
        f"dictionary: {report.dictionary} ({vocabulary.dictionary_size} symbols with specials and <mask>)",
    ]
    if vocabulary.absent_gpt2_ids:
        lines.append(f"  {len(vocabulary.absent_gpt2_ids)} GPT-2 tokens are not in the dictionary: alias ids "
                     f"{vocabulary.dictionary_size}..{len(vocabulary.tokens) - 1}, embedded as <unk>")
    if vocabulary.literal_symbols:
        lines.append(f"  {len(vocabulary.literal_symbols)} dictionary symbols are no GPT-2 token (kept, "
                     f"never produced by the tokenizer): {', '.join(vocabulary.literal_symbols[:3])}"
                     f"{' ...' if len(vocabulary.literal_symbols) > 3 else ''}")
    for item in report.dropped:
        lines.append(f"not exported: {item} (no counterpart in {model})")
    lines.append("verification: " + (report.verification.summary() + " -> OK" if report.verification
                                     else "skipped (--no-verify)"))
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export a fairseq RoBERTa checkpoint (masked LM or roberta_span_qa) to a Hugging Face "
                    "model directory, verified against fairseq.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="fairseq checkpoint (.pt)")
    parser.add_argument("--gpt2-bpe", type=Path, default=None,
                        help="directory with encoder.json and vocab.bpe (default: $GPT2_BPE_DIR)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    parser.add_argument("--dict", type=Path, default=None,
                        help="the fairseq dict.txt the model was trained with (default: dict.txt of the "
                             "checkpoint's training data directory if it exists, else GPT2_BPE/dict.txt)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the comparison with the fairseq model")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest allowed |logit difference| in verification (default %(default)g)")
    args = parser.parse_args(argv)
    hf_logging.disable_progress_bar()  # a few tensors: the report says what was done
    try:
        report = export(args.checkpoint, args.gpt2_bpe, args.out, args.dict, args.force, args.verify,
                        args.tolerance)
    except VerificationError as err:
        print(f"{parser.prog}: verification failed, nothing written: {err}", file=sys.stderr)
        return 1
    for line in describe(report):
        print(line)
    print(f"wrote {args.out}: {', '.join(OUTPUT_FILES)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
