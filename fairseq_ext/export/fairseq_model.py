"""The fairseq side of the conversion: the RoBERTa of a checkpoint (read by fairseq_ext.checkpoints), a
RoBERTa built from args for an import, its outputs, and the checkpoint an import writes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from fairseq import models as fairseq_models
from fairseq.data import Dictionary
from fairseq.models.roberta import RobertaModel

from fairseq_ext.checkpoints import encoder_state_dict, model_config
from fairseq_ext.cli import existing_file
from fairseq_ext.errors import UserInputError
from fairseq_ext.export.config import ENCODER, MASKED_LM, PAD_INDEX, SPAN_QA
from fairseq_ext.plugin.models.roberta_span_qa import RobertaSpanQAModel
from fairseq_ext.squad.settings import QASettings
from fairseq_ext.tokenizer.dictionary import load_roberta_dictionary

SUPPORTED_BPE = (None, "gpt2", "sentencepiece")


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
    kind: str  # MASKED_LM, SPAN_QA (or ENCODER: an import whose masked-LM head is fresh)
    args: argparse.Namespace  # the model's hyper-parameters as fairseq completed them
    dictionary: Dictionary
    dropped: list[str] = field(default_factory=list)  # what the source had that the target cannot hold
    squad_settings: Optional[QASettings] = None  # span QA: the task's windows and post-processing

    @property
    def max_positions(self) -> int:
        return self.model.encoder.sentence_encoder.embed_positions.max_positions

    def outputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """Masked LM: [logits]; span QA: [start logits, end logits]; encoder: [features]."""
        with torch.no_grad():
            if self.kind == SPAN_QA:
                return list(self.model(batch))
            return [self.model(batch, features_only=self.kind == ENCODER)[0]]


def load_dictionary(path: Path) -> Dictionary:
    """The fairseq dictionary as the RoBERTa tasks use it: dict.txt plus <mask>."""
    existing_file(path, "dictionary (dict.txt of the model's training data, see --dict)")
    try:
        return load_roberta_dictionary(path)
    except (ValueError, RuntimeError) as err:
        raise UserInputError(f"cannot read dictionary {path}: {err}") from None


def dictionary_of(symbols: list[str]) -> Dictionary:
    """A fairseq Dictionary holding exactly ``symbols`` (specials and <mask> included) in this order."""
    dictionary = Dictionary()
    for symbol in symbols[len(dictionary):]:
        dictionary.add_symbol(symbol)
    if dictionary.symbols != symbols:
        raise UserInputError("the vocabulary does not start with fairseq's special symbols")
    return dictionary


def build_model(args: argparse.Namespace, dictionary: Dictionary, max_positions: int) -> RobertaModel:
    return fairseq_models.build_model(args, _DictionaryTask(dictionary, max_positions))


def checkpoint_model_args(state: dict, checkpoint: Path) -> argparse.Namespace:
    args = model_config(state)
    name = args.get("_name") or args.get("arch")
    model_class = fairseq_models.ARCH_MODEL_REGISTRY.get(name) or fairseq_models.MODEL_REGISTRY.get(name)
    if model_class is None or not issubclass(model_class, RobertaModel):
        raise UserInputError(f"{checkpoint}: not a RoBERTa checkpoint (model {name!r})")
    bpe = (state.get("cfg") or {}).get("bpe") or {}
    bpe_name = bpe.get("_name") if isinstance(bpe, dict) else None
    if bpe_name not in SUPPORTED_BPE:
        raise UserInputError(f"{checkpoint}: its tokenizer is {bpe_name!r}; GPT-2 BPE and SentencePiece are "
                             "supported")
    return argparse.Namespace(**args)


def load_fairseq_roberta(state: dict, checkpoint: Path, dictionary: Dictionary) -> FairseqRoberta:
    """The fairseq model of a loaded checkpoint (``state``), for export and verification."""
    args = checkpoint_model_args(state, checkpoint)
    tensors = encoder_state_dict(state)
    embedding, positions = (tensors.get(f"encoder.sentence_encoder.{name}.weight")
                            for name in ("embed_tokens", "embed_positions"))
    if embedding is None or positions is None:
        raise UserInputError(f"{checkpoint}: no RoBERTa token and position embeddings in the checkpoint")
    if embedding.shape[0] != len(dictionary):
        raise UserInputError(
            f"{checkpoint}: the embedding has {embedding.shape[0]} rows but the dictionary gives "
            f"{len(dictionary)} symbols with <mask>: pass the dict.txt the model was trained with (--dict)")
    # fine-tuning configs may leave the model's max_positions to the task: the table has the number
    model = build_model(args, dictionary, positions.shape[0] - PAD_INDEX - 1)
    kind = SPAN_QA if isinstance(model, RobertaSpanQAModel) else MASKED_LM
    dropped = _parts_without_hf_counterpart(state["model"], kind)  # before loading deletes them
    try:
        model.load_state_dict(state["model"], strict=True, model_cfg=args)
    except RuntimeError as err:
        raise UserInputError(f"{checkpoint}: its tensors do not fit a RoBERTa model "
                             f"({str(err).splitlines()[-1].strip()})") from None
    settings = squad_task_settings(state) if kind == SPAN_QA else None
    return FairseqRoberta(model=model.float().eval(), kind=kind, args=args, dictionary=dictionary,
                          dropped=dropped, squad_settings=settings)


def squad_task_settings(state: dict) -> Optional[QASettings]:
    """The squad2 task's window and answer settings the model was fine-tuned with (None for other tasks)."""
    task = (state.get("cfg") or {}).get("task") or {}
    if not isinstance(task, dict) or task.get("_name") != "squad2":
        return None
    return QASettings.from_object(task)


def _parts_without_hf_counterpart(tensors: dict, kind: str) -> list[str]:
    """What fairseq itself drops on loading (and so the export does not have): sentence-classification
    heads, and a masked-LM head left in a span-QA checkpoint."""
    heads = sorted({key.split(".")[1] for key in tensors if key.startswith("classification_heads.")})
    parts = [f"classification head {name!r}" for name in heads]
    if kind == SPAN_QA and any(".lm_head." in key for key in tensors):
        parts.append("masked-LM head")
    return parts


CONVERTED_FROM = "converted_from"  # checkpoint key: the HF model an import came from (fairseq ignores it)


def checkpoint_state(roberta: FairseqRoberta, directory: Path, bpe: dict, source: str) -> dict:
    """A checkpoint as fairseq writes one (``cfg`` with the model, task and BPE sections; no optimizer
    state, update 0): ``fairseq-hydra-train`` restores it (checkpoint.restore_file) and
    ``RobertaModel.from_pretrained(DIR, checkpoint_file=...)`` loads it. ``directory``: where it will live
    with dict.txt and the tokenizer files, which ``bpe`` (the config section) names; ``source``: the HF
    model it was converted from."""
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.tasks.masked_lm import MaskedLMConfig
    from omegaconf import OmegaConf

    from fairseq_ext.plugin.tasks.squad2 import SquadV2Config

    cfg = OmegaConf.structured(FairseqConfig)
    if roberta.kind == SPAN_QA:
        settings = roberta.squad_settings or QASettings()
        cfg.task = OmegaConf.structured(SquadV2Config(
            data=str(directory), max_positions=roberta.max_positions, **settings.as_dict()))
        cfg.task._name, cfg.criterion = "squad2", {"_name": "span_qa"}
    else:
        cfg.task = OmegaConf.structured(MaskedLMConfig(data=str(directory),
                                                       tokens_per_sample=roberta.max_positions))
        cfg.task._name, cfg.criterion = "masked_lm", {"_name": "masked_lm"}
    cfg.model = {key: value for key, value in vars(roberta.args).items() if not key.startswith("_")}
    cfg.model._name = roberta.args._name
    cfg.bpe = bpe
    criterion = "SpanQACriterion" if roberta.kind == SPAN_QA else "MaskedLmLoss"
    return {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": {key: tensor.detach().clone() for key, tensor in roberta.model.state_dict().items()},
        "criterion": {},
        "optimizer_history": [{"criterion_name": criterion, "optimizer_name": "none",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "task_state": {},
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "shuffle": True}},
        "last_optimizer_state": None,
        CONVERTED_FROM: source,
    }
