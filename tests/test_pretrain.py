"""Masked-LM pretraining with scripts/pretrain.sh: from scratch, continued from a checkpoint (current and
fairseq 0.9 format), interrupted and resumed, and the pre-flight errors."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys

import pytest
import torch

from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint
from fairseq_ext.errors import UserInputError
from tests.pretrain_fixtures import (
    TINY_PRETRAIN_UPDATES,
    load_launcher,
    logged_update,
    pretrain_command,
    pretrain_env,
    run_pretrain,
    run_signalled_when,
    training_records,
)

RESETS = [f"checkpoint.{flag}=true" for flag in ("reset_optimizer", "reset_lr_scheduler", "reset_meters",
                                                  "reset_dataloader")]
# the cluster configs (512 positions) on the tiny checkpoint (128): without these the checkpoint-architecture
# check refuses it ("has max_positions=128 but the config asks for model.max_positions=512")
TINY_POSITIONS = ["model.max_positions=128", "task.tokens_per_sample=128"]


def preflight_error(*args) -> str:
    """The one-line message of the pre-flight check that stops `pretrain.sh ARGS` (run in-process)."""
    with pytest.raises(UserInputError) as err:
        load_launcher().main(["--config", "tiny", *map(str, args), "--check-only"])
    return str(err.value)


def losses(records: list[dict]) -> list[float]:
    return [float(r["loss"]) for r in records]


# --- from scratch (the shared fixture) ---------------------------------------------------------------

def test_tiny_pretraining_from_scratch_learns_and_logs(tiny_pretrained_checkpoint):
    save_dir = tiny_pretrained_checkpoint.parent
    info = checkpoint_info(load_checkpoint(tiny_pretrained_checkpoint))
    assert (info.model_name, info.task_name) == ("roberta", "masked_lm")
    assert info.embedding_rows == 50265  # GPT-2 dict.txt: 50,264 symbols, + <mask>
    assert info.num_updates == TINY_PRETRAIN_UPDATES and info.has_optimizer_state

    train = losses(training_records(save_dir))
    assert len(train) == TINY_PRETRAIN_UPDATES // 5  # common.log_interval=5
    assert all(math.isfinite(x) for x in train)
    assert train[-1] < train[0] < math.log2(50265) + 0.5  # starts near uniform over the vocabulary
    valid = losses([{"loss": r["valid_loss"]} for r in training_records(save_dir, "valid")])
    assert valid[-1] < valid[0]
    # TensorBoard event files and the hydra config land in the save dir, not the working directory
    assert list((save_dir / "tensorboard" / "train_inner").glob("events.out.tfevents.*"))
    assert (save_dir / ".hydra" / "config.yaml").is_file()
    # the console: one progress line per log interval, no JSON records, no model repr, no hydra warnings
    console = (save_dir.parent / f"{save_dir.name}.console.txt").read_text()
    progress = re.findall(r"\] update (\d+) of 20 \(\d+%\) \| [\d.]+ updates/s \| ETA \d+m\d\ds \| "
                          r"train loss ([\d.]+) bits", console)
    assert [(int(update), float(loss)) for update, loss in progress] == list(zip(range(5, 21, 5), train))
    assert f"validation at update 20: loss {training_records(save_dir, 'valid')[-1]['valid_loss']} bits" \
        in console
    for noise in ('{"epoch"', "RobertaModel(", "version_base", "ConfigStore schema", "'_name': None"):
        assert noise not in console, noise


def test_whole_documents_fall_back_to_blocks_on_lines_longer_than_a_block(wiki_data_bin, tmp_path, capsys):
    """tiny.yaml samples whole documents (complete_doc); the wiki paragraphs have lines longer than its
    127-token blocks, which fairseq would refuse as oversized samples: the launcher trains on contiguous
    blocks and says so in one line, and says nothing where the config already uses blocks."""
    launcher = load_launcher()
    assert launcher.main(["--config", "tiny", "--data", str(wiki_data_bin), "--save-dir",
                          str(tmp_path / "a"), "--check-only"]) == 0
    said = capsys.readouterr()
    assert re.search(r"\d+ of \d+ lines of .* are longer than a 127-token block: sample_break_mode "
                     r"complete_doc -> none", said.out + said.err)
    assert launcher.main(["--config", "tiny", "--data", str(wiki_data_bin), "--save-dir",
                          str(tmp_path / "b"), "--check-only", "task.sample_break_mode=none"]) == 0
    said = capsys.readouterr()
    assert "longer than" not in said.out + said.err


# --- continued pretraining ---------------------------------------------------------------------------

@pytest.mark.slow
def test_continued_pretraining_starts_from_the_checkpoint(tiny_pretrained_checkpoint, wiki_data_bin,
                                                          tmp_path):
    result = run_pretrain("--config", "tiny", "--data", wiki_data_bin, "--save-dir", tmp_path / "run",
                          "--restore", tiny_pretrained_checkpoint, *RESETS, "optimization.max_update=10",
                          "dataset.batch_size=4")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"starting from {tiny_pretrained_checkpoint}" in result.stderr
    assert f"Loaded checkpoint {tiny_pretrained_checkpoint}" in result.stdout

    records = training_records(tmp_path / "run")
    assert {r["bsz"] for r in records} == {"4"}  # the hydra override reached fairseq
    continued = losses(records)
    assert all(math.isfinite(x) for x in continued)
    # it starts where the pretrained model stopped, well below a random model's loss, and stays there (10
    # updates of 4 sequences are too few for the loss to fall reliably, only to stay near it)
    scratch = losses(training_records(tiny_pretrained_checkpoint.parent))
    assert max(continued) < scratch[0] - 0.2
    info = checkpoint_info(load_checkpoint(tmp_path / "run" / "checkpoint_last.pt"))
    assert info.num_updates == 10  # the optimizer (and its update count) was reset


def test_roberta_base_continue_config_passes_the_checks(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path,
                                                         capsys):
    """The cluster config composes against fairseq's schema and its resets let a 500k-update checkpoint
    continue; without them the max_update guard stops it."""
    launcher = load_launcher()
    common = ["--config", "roberta_base_continue", "--data", str(wiki_data_bin), "--save-dir", str(tmp_path),
              "--restore", str(tiny_pretrained_checkpoint), "--check-only", *TINY_POSITIONS]
    assert launcher.main(common) == 0
    assert "update 0 of 12500" in capsys.readouterr().err
    with pytest.raises(UserInputError, match="is at 20 updates and optimization.max_update=12"):
        launcher.main([*common, "checkpoint.reset_optimizer=false", "optimization.max_update=12"])


# --- pre-flight errors -------------------------------------------------------------------------------

def test_preflight_error_is_one_line_before_training(wiki_data_bin, tmp_path):
    save_dir = tmp_path / "run"
    result = run_pretrain("--config", "tiny", "--data", tmp_path / "missing", "--save-dir", save_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pretrain.sh: error: data directory not found: {tmp_path / 'missing'} (--data): make it with "
        "scripts/prepare_corpus.py (masked LM) or scripts/prepare_squad2.py (SQuAD)"]
    assert result.stdout == "" and not save_dir.exists()
    # found before the slow imports: not one fairseq, hydra or torch module was loaded
    traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "fairseq_ext.training.launch",
                             "--config", "tiny", "--data", str(tmp_path / "missing"),
                             "--save-dir", str(save_dir)],
                            capture_output=True, text=True, timeout=300)
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in traced.stderr.splitlines()
               if line.startswith("import time:")}
    assert traced.returncode == 2 and not modules & {"fairseq", "hydra", "torch"}, modules
    help_text = subprocess.run(pretrain_command("--help"), capture_output=True, text=True, timeout=300,
                               env=pretrain_env()).stdout
    assert help_text.startswith("usage: pretrain.sh ")


def test_data_bin_without_valid_split(wiki_data_bin, tmp_path):
    partial = tmp_path / "data-bin"
    partial.mkdir()
    for name in ("dict.txt", "train.bin", "train.idx"):
        (partial / name).symlink_to(wiki_data_bin / name)
    message = preflight_error("--data", partial, "--save-dir", tmp_path / "run")
    assert message.startswith(f"data directory {partial} has no 'valid' split: binarize the corpus with "
                              "fairseq-preprocess")


def test_missing_checkpoint(wiki_data_bin, tmp_path):
    message = preflight_error("--data", wiki_data_bin, "--save-dir", tmp_path / "run",
                              "--restore", tmp_path / "model.pt")
    assert message == (f"checkpoint not found: {tmp_path / 'model.pt'}: fetch a released one with "
                       "scripts/get_checkpoint.sh NAME (roberta.base, roberta.large, xlmr.base, xlmr.large; "
                       "then --restore NAME/model.pt), or convert a Hugging Face model with "
                       "convert/hf_to_fairseq.py")


def test_checkpoint_that_does_not_load(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path):
    truncated = tmp_path / "model.pt"
    truncated.write_bytes(tiny_pretrained_checkpoint.read_bytes()[: 1 << 20])  # an interrupted copy
    message = preflight_error("--data", wiki_data_bin, "--save-dir", tmp_path / "run", "--restore", truncated)
    assert message.startswith(f"cannot load checkpoint {truncated}: PytorchStreamReader failed")


def test_embedding_rows_must_match_the_dictionary(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path):
    """Data binarized with another dictionary (here the checkpoint's with 1,000 more entries) than the
    checkpoint's. (A smaller one is refused earlier, by the data check: ids beyond the dictionary.)"""
    other = tmp_path / "data-bin"
    other.mkdir()
    for name in ("train.bin", "train.idx", "valid.bin", "valid.idx"):
        (other / name).symlink_to(wiki_data_bin / name)
    lines = (wiki_data_bin / "dict.txt").read_text().splitlines(keepends=True)
    assert len(lines) == 50260
    (other / "dict.txt").write_text("".join(lines) + "".join(f"extra{i} 1\n" for i in range(1000)))
    message = preflight_error("--data", other, "--save-dir", tmp_path / "run",
                              "--restore", tiny_pretrained_checkpoint, *RESETS)
    assert message.startswith(
        f"checkpoint {tiny_pretrained_checkpoint} has 50265 embedding rows but task masked_lm has 51265 "
        f"symbols ({other / 'dict.txt'}: 51264 symbols + <mask>)")


def test_max_update_must_exceed_restored_updates(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path):
    args = ["--data", wiki_data_bin, "--save-dir", tmp_path / "run", "--restore", tiny_pretrained_checkpoint]
    message = preflight_error(*args, f"optimization.max_update={TINY_PRETRAIN_UPDATES}")
    assert message == (
        f"checkpoint {tiny_pretrained_checkpoint} is at {TINY_PRETRAIN_UPDATES} updates and "
        f"optimization.max_update={TINY_PRETRAIN_UPDATES}: training would stop at once; raise "
        f"optimization.max_update or reset with checkpoint.reset_optimizer=true")
    # resetting the optimizer (the update count with it) or a larger max_update both pass
    launcher = load_launcher()
    for fix in ("checkpoint.reset_optimizer=true", f"optimization.max_update={TINY_PRETRAIN_UPDATES + 1}"):
        assert launcher.main(["--config", "tiny", *map(str, args), "--check-only", fix]) == 0


# --- checkpoints of fairseq 0.9/0.10 -------------------------------------------------------------------

def test_legacy_checkpoint_loads_into_the_same_model(legacy_checkpoint, tiny_pretrained_checkpoint,
                                                     wiki_data_bin):
    from fairseq import checkpoint_utils

    info = checkpoint_info(load_checkpoint(legacy_checkpoint))
    assert info.legacy_args and info.model_name == "roberta_base" and info.task_name == "masked_lm"
    assert info.embedding_rows == 50265 and info.num_updates == TINY_PRETRAIN_UPDATES
    assert not info.has_optimizer_state

    # fairseq's own loader (its torch.load under torch's defaults) rebuilds the model from the Namespace
    [model], _, _ = checkpoint_utils.load_model_ensemble_and_task(
        [str(legacy_checkpoint)], arg_overrides={"data": str(wiki_data_bin)})
    loaded = model.state_dict()
    original = load_checkpoint(tiny_pretrained_checkpoint)["model"]
    assert set(original) == set(loaded)
    assert all(torch.equal(original[key], loaded[key]) for key in original)


def test_checkpoint_of_the_argparse_fairseq_train_is_read(wiki_data_bin, venv_bin, tmp_path, capsys):
    """fairseq-train (the argparse CLI) keeps the model section of its config as a Namespace."""
    subprocess.run([
        str(venv_bin / "fairseq-train"), str(wiki_data_bin), "--task", "masked_lm", "--arch", "roberta",
        "--encoder-layers", "2", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
        "--encoder-attention-heads", "2", "--max-positions", "128", "--tokens-per-sample", "128",
        "--batch-size", "8", "--max-update", "2", "--optimizer", "adam", "--lr", "1e-3", "--cpu",
        "--disable-validation", "--save-dir", str(tmp_path / "ft"),
    ], check=True, capture_output=True)
    checkpoint = tmp_path / "ft" / "checkpoint_last.pt"
    info = checkpoint_info(load_checkpoint(checkpoint))
    assert (info.model_name, info.task_name, info.num_updates) == ("roberta", "masked_lm", 2)
    assert info.embedding_rows == 50265
    assert load_launcher().main(["--config", "tiny", "--data", str(wiki_data_bin), "--save-dir",
                                 str(tmp_path / "run"), "--restore", str(checkpoint), "--check-only",
                                 "optimization.max_update=40"]) == 0
    expected = f"starting from {checkpoint} (roberta, 50265 embedding rows, update 2 of 40)"
    assert expected in capsys.readouterr().err


def test_numpy_objects_pickled_by_numpy_1_load_safely(tmp_path):
    """fairseq 0.10 meters and iterator states may hold numpy scalars/arrays, pickled under numpy 1's module
    names (numpy.core.multiarray); they load under weights_only, arbitrary objects still do not."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    torch.save({"model": {}, "extra_state": {"best": np.float64(1.5), "order": np.arange(3)}}, buffer,
               pickle_protocol=2, _use_new_zipfile_serialization=False)  # text GLOBAL opcodes, renamable
    data = buffer.getvalue()
    assert data.count(b"numpy._core.multiarray") == 2
    (tmp_path / "old.pt").write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    extra = load_checkpoint(tmp_path / "old.pt")["extra_state"]
    assert extra["best"] == 1.5 and extra["order"].tolist() == [0, 1, 2]

    (tmp_path / "evil.pt").write_bytes(data.replace(b"cnumpy\ndtype", b"cos\nsystem"))
    with pytest.raises(UserInputError, match=r"holds a Python object that torch does not load for safety "
                                             r"\(os.system\)"):
        load_checkpoint(tmp_path / "evil.pt")


@pytest.mark.slow
def test_legacy_checkpoint_continues_training(legacy_checkpoint, tiny_pretrained_checkpoint, wiki_data_bin,
                                              tmp_path):
    result = run_pretrain("--config", "tiny", "--data", wiki_data_bin, "--save-dir", tmp_path / "run",
                          "--restore", legacy_checkpoint, *RESETS, "optimization.max_update=5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Loaded checkpoint {legacy_checkpoint}" in result.stdout
    [first] = losses(training_records(tmp_path / "run"))
    scratch = losses(training_records(tiny_pretrained_checkpoint.parent))
    assert math.isfinite(first) and first < scratch[0] - 0.2


# --- interrupt and resume ------------------------------------------------------------------------------

def curve(save_dir) -> list[tuple[str, str, str]]:
    """(update, loss, lr) of every update, as logged (common.log_interval=1)."""
    return [(r["num_updates"], r["loss"], r["lr"]) for r in training_records(save_dir)]


@pytest.mark.slow
@pytest.mark.parametrize("nproc, signum", [(1, signal.SIGTERM), (2, signal.SIGUSR1)])
def test_signalled_run_saves_at_the_next_update_and_resumes_as_if_uninterrupted(
        nproc, signum, tiny_pretrained_checkpoint, wiki_data_bin, tmp_path, capsys):
    """SIGTERM (1 process) or SIGUSR1 (SLURM's warning before the time limit; 2 processes, gloo on CPU) after
    update 3, between two saves (every 10 updates): checkpoint_last.pt is saved at the end of the update in
    progress, the run exits 75, and running the same command again resumes from it (not from --restore) and
    logs the same losses and learning rates as an uninterrupted run. With 2 processes this is also
    data-parallel continued pretraining: rank 0 restores the checkpoint and broadcasts it to rank 1, rank 0
    alone logs and saves."""
    updates = 8
    args = lambda save_dir: pretrain_command(  # noqa: E731
        "--config", "tiny", "--data", wiki_data_bin, "--save-dir", save_dir,
        "--restore", tiny_pretrained_checkpoint, "--nproc-per-node", nproc, *RESETS,
        f"optimization.max_update={updates}", "common.log_interval=1")
    save_dir = tmp_path / "run"
    # not in the SLURM job the tests may run in; with SIGUSR1 in "job 4242", a stand-in scontrol
    env = {key: value for key, value in pretrain_env().items() if not key.startswith("SLURM_")}
    if signum == signal.SIGUSR1:
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "scontrol").write_text(
            f'#!/usr/bin/env bash\necho "$@" >> {tmp_path / "scontrol.args"}\n')
        (tmp_path / "bin" / "scontrol").chmod(0o755)
        env.update(SLURM_JOB_ID="4242", PATH=f"{tmp_path / 'bin'}:{env['PATH']}")
    status, first = run_signalled_when(args(save_dir), logged_update(3), signum, env)
    assert status == 75, first[-3000:]
    assert f"Loaded checkpoint {tiny_pretrained_checkpoint} (epoch 1 @ 0 updates)" in first
    stopped_at = checkpoint_info(load_checkpoint(save_dir / "checkpoint_last.pt")).num_updates
    assert stopped_at in (3, 4)  # the update in progress when the signal came is finished, not lost
    assert (f"launch_train: stopped by {signal.Signals(signum).name} after update {stopped_at}, saved in "
            "checkpoint_last.pt") in first
    assert sorted(p.name for p in save_dir.glob("checkpoint*")) == ["checkpoint_last.pt"]  # no other save
    if signum == signal.SIGUSR1:  # SLURM's warning before the time limit: the job requeued, by rank 0 once
        assert "; requeued SLURM job 4242: it resumes from there when it starts again" in first
        assert (tmp_path / "scontrol.args").read_text() == "requeue 4242\n"
    if nproc == 2:
        assert ("launch_train: 2 processes on CPU (this launcher): distributed_backend=gloo, "
                "ddp_backend=legacy_ddp") in first
        assert "training on 2 devices" in first
        # both ranks' batches in every update: 2 x tiny.yaml's 16
        assert {r["bsz"] for r in training_records(save_dir)} == {"32"}

    second = subprocess.run(args(save_dir), capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"{save_dir / 'checkpoint_last.pt'} exists: resuming the interrupted run" in second.stderr
    loaded = re.search(r"Loaded checkpoint (\S+) \(epoch \d+ @ (\d+) updates\)", second.stdout)
    assert loaded and loaded.groups() == (str(save_dir / "checkpoint_last.pt"), str(stopped_at))

    reference = subprocess.run(args(tmp_path / "reference"), capture_output=True, text=True, env=env,
                               timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = curve(tmp_path / "reference")
    assert [u for u, _, _ in expected] == [str(n) for n in range(1, updates + 1)]
    assert curve(save_dir) == expected  # each update logged once (one log writer), same loss, same lr
    if nproc == 2:  # it starts where the pretrained model stopped, well below a random model's loss
        scratch = losses(training_records(tiny_pretrained_checkpoint.parent))
        assert float(expected[0][1]) < scratch[0] - 0.2

    # once more after the end: reported, nothing trained
    finished_at = (save_dir / "checkpoint_last.pt").stat().st_mtime_ns
    assert load_launcher().main([str(a) for a in args(save_dir)[2:]]) == 0
    assert f"is at {updates} updates: the run has finished" in capsys.readouterr().err
    assert (save_dir / "checkpoint_last.pt").stat().st_mtime_ns == finished_at


def test_fp16_without_a_gpu_is_a_preflight_error(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path,
                                                 monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserInputError, match=r"^common.fp16=true needs a CUDA GPU and none is visible"):
        load_launcher().main(["--config", "roberta_base_continue", "--data", str(wiki_data_bin),
                              "--save-dir", str(tmp_path), "--restore", str(tiny_pretrained_checkpoint),
                              *TINY_POSITIONS])
    assert not list(tmp_path.iterdir())
