"""What clusters do to a training run: a second training on the same save dir (a manual resubmission while
the requeued job runs), SIGUSR1 before the first update (SLURM's warning while a large model still loads),
SIGTERM in the middle of a validation (longer than SLURM's KillWait)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading

import pytest

from fairseq_ext.training.lock import LOCK_FILE
from fairseq_ext.training.preemption import PENDING_VALIDATION, PREEMPTED
from tests.pretrain_fixtures import (
    logged_update,
    pretrain_command,
    pretrain_env,
    progress_lines,
    run_signalled_when,
    training_records,
)
from tests.test_pretrain import RESETS


def tiny_run(data, save_dir, checkpoint, *overrides) -> list[str]:
    return pretrain_command("--config", "tiny", "--data", data, "--save-dir", save_dir, "--restore",
                            checkpoint, *RESETS, "common.log_interval=1", *overrides)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def outside_slurm() -> dict:
    return {key: value for key, value in pretrain_env().items() if not key.startswith("SLURM_")}


@pytest.mark.slow
def test_a_second_training_on_a_save_dir_is_refused_and_the_lock_never_goes_stale(
        tiny_pretrained_checkpoint, wiki_data_bin, tmp_path):
    save_dir = tmp_path / "run"
    command = tiny_run(wiki_data_bin, save_dir, tiny_pretrained_checkpoint, "optimization.max_update=10000")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**outside_slurm(), "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    # never waits past a deadline: the first training killed then, the loop ends and the assert says why
    watchdog = threading.Timer(300, kill_group, (first.pid,))
    watchdog.start()
    try:
        output = []
        for line in first.stdout:  # training: the lock is held
            output.append(line)
            if logged_update(1)(line):
                break
        watchdog.cancel()
        assert output and logged_update(1)(output[-1]), "".join(output)[-3000:]
        second = subprocess.run(tiny_run(wiki_data_bin, save_dir, tiny_pretrained_checkpoint,
                                         "optimization.max_update=2"),
                                capture_output=True, text=True, env=outside_slurm(), timeout=300)
        assert second.returncode == 2
        host = re.escape(socket.gethostname())
        holder = rf"pid {first.pid} on {host}, since \d{{4}}-\d\d-\d\d [\d:]{{8}} UTC"
        assert re.fullmatch(
            rf"pretrain\.sh: error: {re.escape(str(save_dir))} is in use by another training "
            rf"\({holder}\): wait for it to end, stop it, or choose another --save-dir\n",
            second.stderr.splitlines(True)[-1]), second.stderr
        assert not progress_lines(second.stdout)
    finally:
        watchdog.cancel()
        kill_group(first.pid)  # as a node failure would: no clean-up of any kind
        first.wait()
    assert (save_dir / LOCK_FILE).exists()  # left behind, and meaningless: the kernel dropped the lock

    third = subprocess.run(tiny_run(wiki_data_bin, save_dir, tiny_pretrained_checkpoint,
                                    "optimization.max_update=2"),
                           capture_output=True, text=True, env=outside_slurm(), timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]  # not refused: the killed holder's lock is gone


@pytest.mark.slow
def test_sigusr1_before_the_first_update_stops_with_exit_75(tiny_pretrained_checkpoint, wiki_data_bin,
                                                            tmp_path):
    """The signal comes while the launcher checks the run (it listens from its first line), as fairseq sets
    up: whichever, no update is made, nothing is saved, and the job can be requeued (75, not 138)."""
    save_dir = tmp_path / "run"
    command = tiny_run(wiki_data_bin, save_dir, tiny_pretrained_checkpoint, "optimization.max_update=3")
    status, output = run_signalled_when(command, lambda line: f"starting from {tiny_pretrained_checkpoint}"
                                        in line, signal.SIGUSR1, outside_slurm())
    assert status == PREEMPTED, output[-3000:]
    assert re.search(r"launch_train: stopped by SIGUSR1 before (training began|update 1) \(nothing (new )?"
                     r"to save\): run the same command again to resume \(exit status 75\)", output), \
        output[-3000:]
    assert not progress_lines(output)
    assert not list(save_dir.glob("checkpoint*.pt"))

    again = subprocess.run(command, capture_output=True, text=True, env=outside_slurm(), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["num_updates"] for r in training_records(save_dir)] == ["1", "2", "3"]


def long_validation_data(data_bin, directory):
    """The wiki data-bin whose valid split is its train split (hundreds of blocks: with
    4 blocks per validation batch the validation lasts seconds, long enough to be interrupted)."""
    directory.mkdir()
    for name in ("dict.txt", "train.bin", "train.idx"):
        (directory / name).symlink_to(data_bin / name)
    for suffix in ("bin", "idx"):
        (directory / f"valid.{suffix}").symlink_to(data_bin / f"train.{suffix}")
    return directory


@pytest.mark.slow
def test_sigterm_during_validation_stops_at_once_and_the_validation_is_redone_on_resume(
        tiny_pretrained_checkpoint, wiki_data_bin, tmp_path):
    data = long_validation_data(wiki_data_bin, tmp_path / "data-bin")
    overrides = ["optimization.max_update=5", "dataset.validate_interval_updates=3",
                 "checkpoint.save_interval_updates=3", "dataset.batch_size_valid=4"]
    save_dir = tmp_path / "run"
    command = tiny_run(data, save_dir, tiny_pretrained_checkpoint, *overrides)
    status, output = run_signalled_when(command, lambda line: 'begin validation on "valid" subset' in line,
                                        signal.SIGTERM, outside_slurm())
    assert status == PREEMPTED, output[-3000:]
    assert ("launch_train: stopped by SIGTERM after update 3, saved in checkpoint_last.pt (its validation, "
            "cut short, is redone on resume): run the same command again to resume (exit status 75)") \
        in output
    assert "validation of update 3 stopped (SIGTERM received): it is redone when the run resumes" in output
    assert not training_records(save_dir, "valid")  # the cut validation logged nothing
    assert (save_dir / PENDING_VALIDATION).read_text() == '{"num_updates": 3}\n'

    resumed = subprocess.run(command, capture_output=True, text=True, env=outside_slurm(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "redoing the validation of update 3, cut short by the stop" in resumed.stdout + resumed.stderr
    assert not (save_dir / PENDING_VALIDATION).exists()

    reference_dir = tmp_path / "reference"
    reference = subprocess.run(tiny_run(data, reference_dir, tiny_pretrained_checkpoint, *overrides),
                               capture_output=True, text=True, env=outside_slurm(), timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]
    validations = [(r["valid_num_updates"], r["valid_loss"]) for r in training_records(save_dir, "valid")]
    expected = [(r["valid_num_updates"], r["valid_loss"]) for r in training_records(reference_dir, "valid")]
    assert [u for u, _ in expected] == ["3", "5"] and validations == expected
