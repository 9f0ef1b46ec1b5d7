"""fp16 and bf16 on both sides (fairseq_ext.span_head): the span head's logits are fp32 whatever the encoder
runs in (half weights, or autocast), so the loss and the validation EM/F1 are computed from fp32 logits;
bf16 runs on CPU, so it is trained and scored here; fp16 needs a GPU and is refused in one line without
one."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from fairseq_ext.checkpoints import load_checkpoint
from fairseq_ext.commands import evaluate_hf, fairseq_to_hf
from fairseq_ext.errors import UserInputError
from fairseq_ext.span_head import Float32Linear, compute_in_fp32
from tests.conftest import REPO
from tests.pretrain_fixtures import training_records
from tests.squad_fixtures import run_squad_script

ANSWER_ALWAYS = 1000  # a null threshold the null score never exceeds


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


@pytest.fixture(scope="module")
def bf16_run(squad2_data_bin, tiny_pretrained_checkpoint, tmp_path_factory) -> Path:
    """The save dir of squad2_tiny fine-tuned with common.bf16=true (30 updates, validated at the end). The
    tiny model would answer nothing (F1 = the share of unanswerable questions, whatever the logits): a null
    threshold out of reach makes it answer, so that the scores depend on the logits."""
    save_dir = tmp_path_factory.mktemp("bf16") / "run"
    run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", squad2_data_bin, "--restore",
                     tiny_pretrained_checkpoint, "--save-dir", save_dir, "common.bf16=true",
                     "optimization.max_update=30", "dataset.validate_interval_updates=30",
                     f"+task.null_score_diff_threshold={ANSWER_ALWAYS}")
    return save_dir


def test_fairseq_trains_and_validates_in_bf16(bf16_run):
    """On CPU too, fairseq casts the model to bfloat16 and keeps fp32 master weights, without loss scaling:
    the run learns and validates (EM/F1 from fp32 logits); the saved model in bf16 gives fp32 logits."""
    from fairseq import checkpoint_utils

    import fairseq_ext.plugin  # noqa: F401  (task squad2, model roberta_span_qa)

    losses = [float(record["train_loss"]) for record in training_records(bf16_run, "train")]  # per epoch
    assert len(losses) >= 2 and losses[-1] < losses[0] - 0.5
    assert 0 <= float(training_records(bf16_run, "valid")[-1]["valid_f1"]) <= 100
    assert load_checkpoint(bf16_run / "checkpoint_last.pt")["cfg"]["common"]["bf16"]  # saved as fp32
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(bf16_run / "checkpoint_last.pt")])
    model = models[0].eval().to(torch.bfloat16)
    with torch.no_grad():
        start, end = model(torch.tensor([[0, 100, 200, 2, 2, 300, 2]]))
    assert start.dtype == end.dtype == torch.float32


def test_evaluate_hf_in_bf16_scores_as_fairseq_validated(bf16_run, squad2_data_bin, gpt2_bpe_dir, tmp_path,
                                                         capsys):
    """The bf16-trained model, exported, scored by evaluate_hf.py --bf16 (autocast; fp32 head and
    scores): the EM/F1 of fairseq's bf16 validation on the same questions, within bf16's rounding of a few
    answers; --fp16 without a GPU is one line, before any model is loaded."""
    model = tmp_path / "hf"
    with contextlib.redirect_stdout(io.StringIO()):
        assert fairseq_to_hf.main(["--checkpoint", str(bf16_run / "checkpoint_last.pt"), "--gpt2-bpe",
                                   str(gpt2_bpe_dir), "--out", str(model)]) == 0
    scores = {}
    for precision in ("--bf16", None):
        out = tmp_path / f"eval{precision}"
        with contextlib.redirect_stdout(io.StringIO()):
            assert evaluate_hf.main(["--model", str(model), "--data", str(squad2_data_bin / "valid.json"),
                                     "--out", str(out), "--null-score-diff-threshold", str(ANSWER_ALWAYS),
                                     *([precision] if precision else [])]) == 0
        scores[precision] = json.loads((out / "eval_results.json").read_text())
    validated = training_records(bf16_run, "valid")[-1]
    print(f"\nbf16 validation F1 {validated['valid_f1']}, evaluate_hf --bf16 {scores['--bf16']['f1']:.4f}, "
          f"fp32 {scores[None]['f1']:.4f}")
    assert abs(scores["--bf16"]["f1"] - float(validated["valid_f1"])) <= 1.0
    assert abs(scores["--bf16"]["f1"] - scores[None]["f1"]) <= 1.0
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match=r"^--fp16 needs a CUDA GPU: on CPU use --bf16, or neither"):
            evaluate_hf.main(["--model", str(tmp_path / "absent"), "--data",
                              str(squad2_data_bin / "valid.json"), "--out", str(tmp_path / "fp16"), "--fp16"])


def test_fp16_and_bf16_at_once_are_refused(squad2_data_bin, tmp_path):
    """fairseq would run such a config in fp16 without loss scaling."""
    from fairseq_ext.training import launch

    with pytest.raises(UserInputError, match=r"^common.fp16=true and common.bf16=true: choose one"):
        launch.main(["--config", "squad2_tiny", "--config-dir", str(REPO / "configs" / "finetuning"),
                     "--data", str(squad2_data_bin), "--save-dir", str(tmp_path / "run"), "--from-scratch",
                     "--check-only", "common.fp16=true", "common.bf16=true"])
