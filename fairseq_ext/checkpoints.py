"""Reading fairseq RoBERTa checkpoints of any vintage, safely.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses any Python object it does not
know. fairseq 0.9/0.10 checkpoints keep their training arguments as an ``argparse.Namespace`` (and
may hold numpy scalars or arrays in their training state), so importing this module adds exactly those
types to torch's allow-list: fairseq's own ``torch.load`` (restoring in ``fairseq-hydra-train``) then
accepts them too, while arbitrary code in a checkpoint is still refused. (In data-parallel training the
state rank 0 restored is broadcast to the other ranks, which trust it: fairseq_ext.training.distributed.)

Old checkpoints also name the encoder ``decoder.*`` and its embedding layer norm ``emb_layer_norm``
(and fuse the attention projections into ``in_proj_weight``); fairseq's ``RobertaModel`` upgrades such
state dicts when it loads them, and :func:`encoder_state_dict` gives the two renamed prefixes for code
that reads tensors directly (the Hugging Face converter).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from fairseq_ext.cli import existing_file
from fairseq_ext.errors import UserInputError


def _allowed_checkpoint_globals() -> list:
    """The non-tensor objects found in fairseq checkpoints from 0.9 on: the argument Namespace, and
    numpy scalars/arrays in meters and iterator states. A pickle names numpy's internals after the numpy
    that wrote it (numpy.core in 1.x, numpy._core in 2.x), so both names are allowed."""
    core = np._core if hasattr(np, "_core") else np.core
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")] \
        if hasattr(np, "dtypes") else []
    allowed = [argparse.Namespace, np.dtype, np.ndarray, *dtypes]
    for fn in (core.multiarray.scalar, core.multiarray._reconstruct):
        allowed += [(fn, f"{module}.multiarray.{fn.__name__}") for module in ("numpy.core", "numpy._core")]
    return allowed


# torch >= 2.6 loads with weights_only=True by default (and accepts globals named in tuples); older torch
# loads any pickle by default, so there is nothing to allow.
if torch.__version__ >= "2.6":
    torch.serialization.add_safe_globals(_allowed_checkpoint_globals())

EMBEDDING_KEY = "encoder.sentence_encoder.embed_tokens.weight"
# how torch's weights-only unpickler names a refused global (two wordings, depending on the object)
UNSAFE_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def load_checkpoint(path: str | Path, lazy: bool = False) -> dict:
    """The raw checkpoint dict (tensors on CPU). A missing, truncated or unsafe file is a one-line
    UserInputError. ``lazy``: the tensors are memory-mapped, read only when used (a quick look at a large
    checkpoint); files in torch's pre-1.6 format, which cannot be mapped, are read whole."""
    path = existing_file(path, "checkpoint")
    try:
        # torch's default: weights only from torch 2.6 on
        state = torch.load(path, map_location="cpu", mmap=lazy and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        unsafe = UNSAFE_GLOBAL.search(str(err))
        if unsafe:
            raise UserInputError(
                f"checkpoint {path} holds a Python object that torch does not load for safety "
                f"({unsafe.group(1)}); it is not a fairseq checkpoint"
            ) from None
        raise UserInputError(f"cannot load checkpoint {path}: {_reason(err)}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UserInputError(f"cannot load checkpoint {path}: {_reason(err)}") from None
    except Exception as err:  # a text or other file read as a legacy pickle: KeyError, IndexError...
        raise UserInputError(f"cannot load checkpoint {path}: not a PyTorch checkpoint "
                             f"({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise UserInputError(f"{path} is not a fairseq checkpoint (no 'model' entry)")
    return state


@dataclass
class CheckpointInfo:
    """What the pre-flight checks and the converters need to know about a checkpoint."""

    model_name: Optional[str]  # architecture, e.g. "roberta_base" (legacy) or "roberta"
    task_name: Optional[str]
    num_updates: int
    has_optimizer_state: bool  # fairseq restores num_updates only from a checkpoint that has one
    embedding_rows: Optional[int]  # None when the model has no RoBERTa token embedding
    legacy_args: bool  # saved before fairseq's hydra configs (0.9, 0.10): an argparse Namespace


def checkpoint_info(state: dict) -> CheckpointInfo:
    history = state.get("optimizer_history") or [{}]
    embedding = encoder_state_dict(state).get(EMBEDDING_KEY)
    model = model_config(state)
    return CheckpointInfo(
        model_name=model.get("arch") or model.get("_name"),
        task_name=_config_section(state, "task").get("_name"),
        num_updates=int(history[-1].get("num_updates", 0)),
        has_optimizer_state=state.get("last_optimizer_state") is not None,
        embedding_rows=None if embedding is None else int(embedding.shape[0]),
        legacy_args=state.get("args") is not None,
    )


def model_config(state: dict) -> dict[str, Any]:
    """Model hyper-parameters (encoder_layers, encoder_embed_dim, ...): the ``model`` section of the
    saved hydra config, or the flat argument Namespace of older checkpoints (where the architecture
    name is under ``arch``)."""
    return _config_section(state, "model")


def training_data_dir(checkpoint_state: dict) -> Optional[Path]:
    """The checkpoint's (first) training data directory, when it is still there."""
    task = (checkpoint_state.get("cfg") or {}).get("task") or {}
    data = task.get("data") if isinstance(task, dict) else None
    if data is None and checkpoint_state.get("args") is not None:
        data = getattr(checkpoint_state["args"], "data", None)
    directory = Path(str(data).split(os.pathsep)[0]) if data else None
    return directory if directory is not None and directory.is_dir() else None


def own_dictionary(checkpoint_state: dict, checkpoint: Path) -> Optional[Path]:
    """The dict.txt the model was trained with, where it is still known: in the checkpoint's training data
    directory, or beside the checkpoint (a model directory: model.pt + dict.txt)."""
    data = training_data_dir(checkpoint_state)
    candidates = [data / "dict.txt"] if data is not None else []
    return next((path for path in [*candidates, checkpoint.parent / "dict.txt"] if path.is_file()), None)


def model_with_dictionary(checkpoint: Path, state: dict, dictionary_dir: Path):
    """(model in eval mode, its config, its task) of a checkpoint already read into ``state`` and checked
    for its task, the task's dictionary read from DICTIONARY_DIR/dict.txt (+ <mask>, as the task builds it)
    instead of the training data: one of another size than the model's embedding is a UserInputError."""
    from fairseq import checkpoint_utils, tasks
    from omegaconf import OmegaConf

    rows = checkpoint_info(state).embedding_rows
    state["cfg"] = OmegaConf.create(state["cfg"])
    state["cfg"].task.data = str(dictionary_dir)  # the task only needs dict.txt from it
    task = tasks.setup_task(state["cfg"].task)
    if rows != len(task.source_dictionary):
        raise UserInputError(f"checkpoint {checkpoint} has {rows} embedding rows but "
                             f"{Path(dictionary_dir) / 'dict.txt'} + <mask> gives "
                             f"{len(task.source_dictionary)} symbols: use the dictionary the model was "
                             "trained with")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], task=task,
                                                                      state=state)
    return models[0].eval(), cfg, task


def encoder_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """The model's tensors with the current top-level names: ``decoder.`` -> ``encoder.`` and
    ``emb_layer_norm`` -> ``layernorm_embedding`` (as fairseq's RobertaModel.upgrade_state_dict_named
    does). Attention projections are left as stored."""
    renamed = {}
    for key, tensor in state["model"].items():
        if key.startswith("decoder."):
            key = "encoder." + key[len("decoder."):]
        renamed[key.replace(".emb_layer_norm.", ".layernorm_embedding.")] = tensor
    return renamed


def _config_section(state: dict, section: str) -> dict[str, Any]:
    if state.get("args") is not None:  # fairseq 0.9/0.10: one flat Namespace
        args = vars(state["args"])
        return {**args, "_name": args.get(section)} if section == "task" else dict(args)
    value = (state.get("cfg") or {}).get(section) or {}
    # fairseq-train (argparse CLI) keeps a Namespace for the model section of legacy architectures
    return dict(vars(value)) if isinstance(value, argparse.Namespace) else dict(value)


def _reason(err: BaseException) -> str:
    """The informative line of torch's multi-paragraph load errors."""
    text = str(err).split("WeightsUnpickler error:")[-1]
    boilerplate = ("Weights only load failed", "Check the documentation")
    paragraphs = [p.strip() for p in text.split("\n\n")]
    informative = [p for p in paragraphs if p and not p.startswith(boilerplate)]
    return informative[0].splitlines()[0] if informative else type(err).__name__
