"""fp16 and bf16 on both sides (fairseq_ext.span_head): the span head's logits are fp32 whatever the encoder
runs in (half weights, or autocast), so the loss and the validation EM/F1 are computed from fp32 logits;
bf16 runs on CPU, so it is trained and scored here; fp16 needs a GPU and is refused in one line without
one."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from fairseq_ext.checkpoints import load_checkpoint
from fairseq_ext.commands import evaluate_hf
from fairseq_ext.errors import UserInputError
from fairseq_ext.span_head import Float32Linear, compute_in_fp32
from tests.pretrain_fixtures import training_records
from tests.squad_fixtures import TINY_WINDOWS, VALID_ARTICLES, run_squad_script, squad_articles


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_span_head_computes_in_fp32(dtype):
    torch.manual_seed(1)
    linear = torch.nn.Linear(8, 2)
    state = {key: value.clone() for key, value in linear.state_dict().items()}
    head = compute_in_fp32(linear)
    assert isinstance(head, Float32Linear) and head.state_dict().keys() == state.keys()
    features = torch.randn(3, 5, 8)
    expected = features @ state["weight"].T + state["bias"]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the encoder under autocast
        logits = head(features.to(torch.bfloat16))
    assert logits.dtype == torch.float32
    head.to(dtype)  # fairseq's common.fp16 / common.bf16: the whole model in half
    half = head(features.to(dtype))
    assert half.dtype == torch.float32
    assert torch.allclose(half, expected, atol=0.05)  # only the inputs' and weights' rounding
    half.sum().backward()
    assert head.weight.grad.dtype == dtype  # the gradient reaches the half weights


def test_fairseq_trains_and_validates_in_bf16(squad2_data_bin, tiny_pretrained_checkpoint, tmp_path):
    """squad2_tiny with common.bf16=true (on CPU: fairseq casts the model to bfloat16, keeps fp32 master
    weights, no loss scaling): it learns, validates (EM/F1 from fp32 logits); the saved
    model in bf16 gives fp32 logits."""
    from fairseq import checkpoint_utils

    import fairseq_ext.plugin  # noqa: F401  (task squad2, model roberta_span_qa)

    save_dir = tmp_path / "bf16"
    run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", squad2_data_bin, "--restore",
                     tiny_pretrained_checkpoint, "--save-dir", save_dir, "common.bf16=true",
                     "optimization.max_update=30", "dataset.validate_interval_updates=30")
    losses = [float(record["train_loss"]) for record in training_records(save_dir, "train")]  # per epoch
    assert len(losses) >= 2 and losses[-1] < losses[0] - 0.5
    assert 0 <= float(training_records(save_dir, "valid")[-1]["valid_f1"]) <= 100
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(save_dir / "checkpoint_last.pt")])
    assert load_checkpoint(save_dir / "checkpoint_last.pt")["cfg"]["common"]["bf16"]  # saved as fp32
    model = models[0].eval().to(torch.bfloat16)
    tokens = torch.tensor([[0, 100, 200, 2, 2, 300, 2]])
    with torch.no_grad():
        start, end = model(tokens)
    assert start.dtype == end.dtype == torch.float32
