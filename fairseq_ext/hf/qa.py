"""Extractive QA with a Hugging Face RoBERTa and the project's SQuAD code (no fairseq import): the model
and tokenizer, the settings it carries (``squad_settings`` in config.json, written by the exporter and by
finetune_hf), and its forward for the shared prediction loop (fairseq_ext.squad.predict)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.errors import UserInputError
from fairseq_ext.hf.hub import load_hf_tokenizer, load_pretrained, model_directory
from fairseq_ext.squad import Predictions, SquadExample, build_features
from fairseq_ext.squad import predict as shared
from fairseq_ext.squad.settings import QASettings
from fairseq_ext.tokenizer.hf_adapter import HFTokenizerAdapter

QA_MODEL_TYPES = ("roberta", "xlm-roberta")
QA_HEAD = "qa_outputs."  # RobertaForQuestionAnswering's span head
SETTINGS_KEY = "squad_settings"  # config.json entry holding the QASettings of an export
SOURCES = {"option": "--null-score-diff-threshold", "model": "stored in the model",
           "default": "default: the model stores none"}


def load_qa_model(model_dir: str | Path, device: str = "cpu", trained_head: bool = True):
    """(fast tokenizer, model in eval mode) of a Hugging Face RoBERTa or XLM-R directory, or a one-line
    error. transformers initialises at random whatever the weights lack: such a model is refused, and with
    ``trained_head`` (evaluation, prediction) so is one without the question-answering head (a masked-LM
    export); fine-tuning starts from one."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    model_dir = model_directory(model_dir)
    hf_logging.set_verbosity_error()  # its load report is replaced by the checks below
    try:
        config = AutoConfig.from_pretrained(str(model_dir))
        if config.model_type not in QA_MODEL_TYPES:
            raise UserInputError(f"{model_dir}: model_type {config.model_type!r} is not a RoBERTa or XLM-R "
                                 f"model ({' or '.join(QA_MODEL_TYPES)}, as fairseq_to_hf.py exports them)")
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"cannot load {model_dir}: {str(err).splitlines()[0]}") from None
    tokenizer = load_hf_tokenizer(model_dir, config)
    model, loading = load_pretrained(AutoModelForQuestionAnswering, model_dir)
    missing = sorted(loading["missing_keys"])
    head = [key for key in missing if key.startswith(QA_HEAD)]
    if trained_head and head:
        what = ", ".join(config.architectures or []) or "a model without a QA head"
        raise UserInputError(f"{model_dir} has no trained question-answering head ({', '.join(head)} not in "
                             f"its weights: {what}); export a checkpoint fine-tuned on SQuAD (task squad2) "
                             "or fine-tune this one with finetune_hf.py")
    others = [key for key in missing if not key.startswith(QA_HEAD)]
    if others:
        raise UserInputError(f"{model_dir}: {len(others)} weights missing from its files (e.g. {others[0]}): "
                             "not a complete RoBERTa model")
    return tokenizer, with_fp32_head(model).to(device).eval()


def with_fp32_head(model):
    """The model with its span head computing in fp32 under --fp16/--bf16, as fairseq's
    (fairseq_ext.span_head)."""
    from fairseq_ext.span_head import compute_in_fp32

    compute_in_fp32(model.qa_outputs)
    return model


def model_settings(model, options) -> tuple[QASettings, str]:
    """The settings to answer with: those given in ``options`` (parsed arguments or a dict; None = not
    given), else the model's stored ones, else the defaults; and where the null threshold comes from."""
    recorded = getattr(model.config, SETTINGS_KEY, None) or {}
    settings = QASettings.from_object(options, base=QASettings.from_object(recorded))
    given = options.get if isinstance(options, dict) else lambda name: getattr(options, name, None)
    source = "option" if given("null_score_diff_threshold") is not None else \
        "model" if "null_score_diff_threshold" in recorded else "default"
    limit = model.config.max_position_embeddings - model.config.pad_token_id - 1
    settings.check_fits(limit, hint=" (--max-seq-length)")
    return settings, f"{settings.describe()} (null threshold: {SOURCES[source]})"


def add_precision_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--fp16`` / ``--bf16`` (dest ``precision``): ``what`` runs under torch's autocast in that type; the
    span head, the loss and the scores stay fp32."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                       help=f"{what} in float16 mixed precision (CUDA GPUs; the span head stays fp32)")
    group.add_argument("--bf16", dest="precision", action="store_const", const="bf16",
                       help=f"{what} in bfloat16 mixed precision (A100/H100 and later, or CPU; the span head "
                            "stays fp32)")


def check_precision(precision: Optional[str], device: str) -> None:
    """A precision the device lacks: a one-line error before any model is loaded."""
    import torch

    if precision == "fp16" and not device.startswith("cuda"):
        raise UserInputError("--fp16 needs a CUDA GPU: on CPU use --bf16, or neither (fp32)")
    if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise UserInputError("--bf16: this GPU has no bfloat16 arithmetic (before A100): use --fp16")


def autocast(precision: Optional[str], device: str):
    """torch's autocast in ``precision`` (fp16, bf16) on ``device``; disabled for None (fp32)."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=precision is not None)


def hf_forward(model, device: str, precision: Optional[str] = None):
    """The shared prediction loop's forward for a HF QA model (attention mask from <pad>), in
    ``precision`` (None: fp32); the logits are fp32 either way."""
    import torch

    @torch.no_grad()
    def forward(tokens):
        input_ids = torch.from_numpy(tokens).to(device)
        with autocast(precision, device):
            output = model(input_ids=input_ids, attention_mask=input_ids.ne(model.config.pad_token_id))
        return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()

    return forward


def answer_questions(examples: Sequence[SquadExample], tokenizer, model, settings: QASettings,
                     version_2: bool, batch_size: int = 32, device: str = "cpu",
                     progress: bool = False, max_tokens: Optional[int] = None,
                     precision: Optional[str] = None) -> Predictions:
    """The shared SQuAD pipeline (windows -> logits -> run_qa post-processing) with a HF model."""
    features = build_features(examples, HFTokenizerAdapter(tokenizer), **settings.windows(),
                              progress=progress)
    return shared.answer_questions(examples, features, hf_forward(model, device, precision), settings,
                                   version_2, batch_size, progress, max_tokens)


def add_answer_arguments(parser: argparse.ArgumentParser, runtime: bool = True) -> None:
    """Windowing and post-processing options (unset: the model's stored settings, else the defaults), and
    with ``runtime`` the prediction batch size and device."""
    QASettings.add_arguments(parser, default_from="the model's stored settings, else run_qa's")
    if runtime:
        shared.add_runtime_arguments(parser)
