"""Session fixtures for the pretrain tests (and the stages built on them)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO

PRETRAIN_SH = REPO / "scripts" / "pretrain.sh"
TINY_PRETRAIN_UPDATES = 20


def pretrain_command(*args) -> list[str]:
    """scripts/pretrain.sh ARGS (run with this test interpreter, see pretrain_env)."""
    return ["bash", str(PRETRAIN_SH), *map(str, args)]


def pretrain_env() -> dict:
    return {**os.environ, "PYTHON": sys.executable}


def run_pretrain(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """scripts/pretrain.sh ARGS to completion, output captured (fairseq logs to stdout)."""
    return subprocess.run(pretrain_command(*args), capture_output=True, text=True, env=pretrain_env(),
                          timeout=timeout)


def run_signalled_when(command: list[str], trigger: Callable[[str], bool], signum: int, env: dict,
                       timeout: float = 600) -> tuple[int, str]:
    """Runs COMMAND (unbuffered, stderr into stdout); at the first output line for which TRIGGER is true,
    sends SIGNUM to the command's own process (the launcher, which passes it on to its training processes).
    Returns (exit status, output)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**env, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    watchdog = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if trigger is not None and trigger(line):
                process.send_signal(signum)
                trigger = None  # once
        return process.wait(), "".join(lines)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def logged_update(update: int) -> Callable[[str], bool]:
    """run_signalled_when's trigger: the progress line of update UPDATE (common.log_interval=1)."""
    return lambda line: re.search(rf"\] update {update}\b", line) is not None


def progress_lines(output: str) -> list[str]:
    """The progress lines (one per logged update) in a training's console output."""
    return re.findall(r"\] update \d+ of .*", output)


def load_launcher():
    """The launcher of scripts/launch_train.py: its main(argv) runs the checks in-process (with --check-only
    nothing trains), raising UserInputError with the one-line message."""
    from fairseq_ext.training import launch

    return launch


def training_records(save_dir: Path, kind: str = "train_inner") -> list[dict]:
    """The JSON records of one kind from the run's common.log_file (every run in save_dir, in order):
    'train_inner' (every log_interval updates), 'valid' or 'train' (end of epoch)."""
    records = []
    for line in (Path(save_dir) / "train_log.json").read_text().splitlines():
        if not line.startswith('{"'):  # the log file also holds the config and the model's repr
            continue
        record = json.loads(line)
        found = "valid" if "valid_loss" in record else "train" if "train_loss" in record else "train_inner"
        if found == kind:
            records.append(record)
    return records


@pytest.fixture(scope="session")
def tiny_pretrained_checkpoint(wiki_data_bin, tmp_path_factory) -> Path:
    """A tiny RoBERTa (configs/pretraining/tiny.yaml) trained from random init for a few updates on the
    wiki paragraphs with the real GPT-2 dictionary: 50,265 embedding rows, optimizer state included."""
    save_dir = tmp_path_factory.mktemp("tiny_pretrained")
    # lr 1e-3 (tiny.yaml's rate before it was tuned for the learnable set): the tests built on this
    # checkpoint were calibrated with it (test_finetune_hf pins its own: tiny.yaml's former batch, dropout)
    # validation every 10 updates: a curve of two points (tiny.yaml validates every 100)
    result = run_pretrain("--config", "tiny", "--data", wiki_data_bin, "--save-dir", save_dir,
                          f"optimization.max_update={TINY_PRETRAIN_UPDATES}", "optimization.lr=[0.001]",
                          "dataset.validate_interval_updates=10")
    assert result.returncode == 0, f"tiny pretraining failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    # what a person watching saw (test_pretrain checks the progress lines)
    (save_dir.parent / f"{save_dir.name}.console.txt").write_text(result.stdout + result.stderr)
    return save_dir / "checkpoint_last.pt"


def make_legacy_checkpoint(modern: Path, data_bin: Path, dest: Path) -> Path:
    """The checkpoint as fairseq 0.9 wrote RoBERTa's model.pt: argparse Namespace args (from fairseq-train's
    own parser), decoder.* keys, emb_layer_norm, fused in_proj attention weights, no optimizer state, in
    torch's pre-1.6 (non-zip) file format."""
    import torch
    from fairseq import options

    from fairseq_ext.checkpoints import load_checkpoint

    state = load_checkpoint(modern)
    model_cfg = state["cfg"]["model"]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data_bin), "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta_base",
        "--encoder-layers", str(model_cfg["encoder_layers"]),
        "--encoder-embed-dim", str(model_cfg["encoder_embed_dim"]),
        "--encoder-ffn-embed-dim", str(model_cfg["encoder_ffn_embed_dim"]),
        "--encoder-attention-heads", str(model_cfg["encoder_attention_heads"]),
        "--max-positions", str(model_cfg["max_positions"]), "--tokens-per-sample", "128",
        "--optimizer", "adam", "--lr-scheduler", "polynomial_decay", "--lr", "0.001",
        "--total-num-update", "20", "--max-update", "20",
    ])
    model = {}
    for key, tensor in state["model"].items():
        key = key.replace("encoder.", "decoder.", 1).replace(".layernorm_embedding.", ".emb_layer_norm.")
        if ".self_attn.q_proj." in key:  # q, k, v stacked as in_proj_weight / in_proj_bias
            parts = [state["model"][key.replace("decoder.", "encoder.", 1).replace("q_proj", proj)]
                     for proj in ("q_proj", "k_proj", "v_proj")]
            model[key.replace("q_proj.", "in_proj_")] = torch.cat(parts)
        elif ".self_attn.k_proj." in key or ".self_attn.v_proj." in key:
            continue
        else:
            model[key] = tensor
    legacy = {
        "args": args,
        "model": model,
        "optimizer_history": [{"criterion_name": "MaskedLmLoss", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": 15.0},
                               "num_updates": state["optimizer_history"][-1]["num_updates"]}],
        "extra_state": {"epoch": 1, "train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "shuffle": True},
                        "val_loss": 15.0},
    }
    torch.save(legacy, dest, _use_new_zipfile_serialization=False)
    return dest


@pytest.fixture(scope="session")
def legacy_checkpoint(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path_factory) -> Path:
    return make_legacy_checkpoint(tiny_pretrained_checkpoint, wiki_data_bin,
                                  tmp_path_factory.mktemp("legacy") / "model.pt")


def make_release_archive(model: Path, dictionary: Path, dest: Path, name: str = "roberta.base") -> Path:
    """``dest``/NAME.tar.gz in the layout of fairseq's released archives: NAME/model.pt, NAME/dict.txt,
    NAME/NOTE (xlmr.*: also sentencepiece.bpe.model, here an empty stand-in)."""
    import tarfile

    archive = dest / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model, f"{name}/model.pt")
        tar.add(dictionary, f"{name}/dict.txt")
        note = dest / "NOTE"
        note.write_text("made by the tests: a tiny model in the release layout\n")
        tar.add(note, f"{name}/NOTE")
        if name.startswith("xlmr."):
            tar.add(note, f"{name}/sentencepiece.bpe.model")
    return archive


@pytest.fixture(scope="session")
def release_archive(legacy_checkpoint, wiki_data_bin, tmp_path_factory) -> Path:
    """roberta.base.tar.gz as fairseq releases it (a fairseq 0.9 model.pt beside its dict.txt), holding the
    tiny model: what scripts/get_checkpoint.sh --copy-from takes on an offline machine."""
    dest = tmp_path_factory.mktemp("release")
    return make_release_archive(legacy_checkpoint, wiki_data_bin / "dict.txt", dest)
