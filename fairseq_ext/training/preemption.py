"""fairseq-hydra-train in this process, made safe to stop: a preemption or a job's time limit loses at most
the update in progress, and a checkpoint on disk is always a complete one.

  - SIGUSR1 (SLURM's ``--signal=USR1@120``, sent before the time limit) or SIGTERM (preemption, scancel,
    a local launcher's stop) asks for a stop, at any moment: the launcher listens from its first line
    (:func:`catch_stop_signals`), and one that came before training began stops it before it starts; one
    that came while fairseq set up (loading the model, the checkpoint) stops it before its first update.
    During validation, the validation is abandoned at the next batch (SLURM's KillWait is 30 s by default)
    and redone when the run resumes (``SAVE_DIR/validation_pending.json``). Otherwise, at the end of the
    current update (all ranks of a
    data-parallel run agree on which, through a one-number all-reduce after every update) training saves
    ``checkpoint_last.pt`` and stops; the process then exits with status :data:`PREEMPTED` (75,
    EX_TEMPFAIL: try again). After SIGUSR1 in a SLURM job, rank 0 requeues the job (``scontrol requeue``;
    scripts/slurm/*.sbatch allow it); after SIGTERM it does not (a preemption is requeued by SLURM
    itself, a scancel must not be undone). Rerunning the same command
    resumes from that checkpoint with fairseq's own mid-epoch state (the data iterator's position, the
    learning-rate schedule, the meters), so the resumed run does the updates the uninterrupted one would.
  - Every checkpoint file appears complete or not at all: fairseq writes the first file of a save through
    a ``.tmp`` rename, and copies it to the others (checkpoint_last.pt among them) in place; these copies go
    through a ``.tmp`` rename as well.
  - A save that fails (a full disk) leaves no ``.tmp`` file, keeps the checkpoints saved before, and is one
    line (:class:`CheckpointNotSaved`, turned into a UserInputError) instead of fairseq's retries'
    tracebacks.

Hooked in from outside fairseq through its module attributes: ``fairseq_cli.train.train`` (an epoch),
``fairseq_cli.train.validate``, ``fairseq_cli.train.validate_and_save`` and
``fairseq.checkpoint_utils.save_checkpoint`` are wrapped, and checkpoint_utils' PathManager is a
subclass whose ``copy`` renames into place (:func:`install`). fairseq's files are not modified.

Run as ``python -m fairseq_ext.training.preemption CONFIG_DIR CONFIG_NAME HYDRA_ARGS`` it is one rank of
the local data-parallel processes the launcher (fairseq_ext.training.launch) starts.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from fairseq_ext.errors import UserInputError

PREEMPTED = 75  # the exit status of a run stopped by a signal after saving (sysexits' EX_TEMPFAIL)
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
PENDING_VALIDATION = "validation_pending.json"  # in the save dir: the update whose validation a stop cut

logger = logging.getLogger("fairseq_ext.training.preemption")


class CheckpointNotSaved(BaseException):
    """A checkpoint could not be written (a BaseException: hydra prints any Exception as a traceback)."""


class _State:
    requested: Optional[str] = None  # the name of the signal that asked for a stop
    stopped_at: Optional[int] = None  # the update after which training stopped
    saved_update: Optional[int] = None  # the update of the last save
    start_update: Optional[int] = None  # the update this run started from
    validation_cut: bool = False  # the stop abandoned a validation (redone on resume)
    reports: bool = True  # rank 0 reports the stop (every rank gets the signal under srun)


class _ValidationStopped(Exception):
    """A stop was agreed on in the middle of a validation."""


def _request_stop(signum, frame) -> None:
    if _State.requested is None:
        _State.requested = signal.Signals(signum).name
        # os.write: print() is not safe in a handler that may interrupt another print
        os.write(2, f"{_State.requested} received: saving checkpoint_last.pt at the end of this update, "
                 "then stopping\n".encode())


def catch_stop_signals() -> None:
    """From now on SIGUSR1 and SIGTERM ask this process for a stop instead of ending it (the launcher's and
    every training process's first step: a signal before training begins must not kill the job); one that
    waited while they were blocked (:func:`block_stop_signals`) is handled now."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _request_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def block_stop_signals() -> None:
    """Run in a new process before it executes Python (Popen's preexec_fn): the stop signals wait until it
    listens (the mask survives exec)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def stop_requested() -> Optional[str]:
    """The name of the signal that asked for a stop, if one did."""
    return _State.requested


def stopped_before_training(reports: bool) -> int:
    """A stop asked for before training began: nothing to save; reported (and, after SIGUSR1 in a SLURM job,
    the job requeued) by rank 0. Returns PREEMPTED."""
    if reports:
        report_stop(f"launch_train: stopped by {_State.requested} before training began (nothing to save)")
    return PREEMPTED


def report_stop(stopped: str) -> None:
    """The stop's line, with the requeue after SIGUSR1 in a SLURM job (SLURM's warning before the time
    limit), else how to resume."""
    job = os.environ.get("SLURM_JOB_ID")
    if _State.requested == "SIGUSR1" and job:
        print(f"{stopped}; {requeue(job)}", file=sys.stderr, flush=True)
    else:
        print(f"{stopped}: run the same command again to resume (exit status {PREEMPTED})", file=sys.stderr,
              flush=True)


def run_fairseq_hydra_train(config_dir: Path, config_name: str, overrides: list[str]) -> int:
    """fairseq-hydra-train in this process, stoppable by SIGUSR1/SIGTERM: 0 when training ended, PREEMPTED
    when a signal stopped it after saving checkpoint_last.pt. Every training process of the launcher comes
    here, so this is where the compatibility patches are applied (distributed.apply_compat_patches: the
    checkpoint allow-list for fairseq's torch.load, trusted rank-0 broadcasts)."""
    listening = signal.getsignal(signal.SIGTERM) is _request_stop  # since the launcher's first line
    if not listening:
        _State.requested = None
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    catch_stop_signals()
    _State.stopped_at = _State.saved_update = _State.start_update = None
    _State.validation_cut, _State.reports = False, True

    from fairseq_ext.training import progress

    progress.install()  # before fairseq_cli.hydra_train is imported: hydra warns then
    from fairseq_cli.hydra_train import cli_main

    import fairseq_ext.plugin  # noqa: F401  (registered before fairseq imports --user-dir, which is then a no-op)
    from fairseq_ext.training.distributed import apply_compat_patches

    apply_compat_patches()
    install()
    sys.argv = ["fairseq-hydra-train", "--config-dir", str(config_dir), "--config-name", config_name,
                *overrides]
    try:
        cli_main()
    except CheckpointNotSaved as err:
        raise UserInputError(str(err)) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if _State.stopped_at is None:
        return 0
    if _State.reports:
        by = _State.requested or "a signal to another rank"
        if _State.stopped_at == _State.start_update:
            stopped = (f"launch_train: stopped by {by} before update {_State.stopped_at + 1} (nothing new to "
                       "save)")
        else:
            stopped = (f"launch_train: stopped by {by} after update {_State.stopped_at}, saved in "
                       "checkpoint_last.pt")
        if _State.validation_cut:
            stopped += " (its validation, cut short, is redone on resume)"
        report_stop(stopped)
    return PREEMPTED


def requeue(job: str) -> str:
    """``scontrol requeue JOB`` (the job must allow it: ``--requeue``); says what happened. SLURM then stops
    every task of the job (all of them have passed the save) and starts the job again from the queue."""
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except OSError as err:
        return f"cannot requeue SLURM job {job} ({err.strerror}): resubmit it to resume"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["scontrol failed"])[-1]
        return f"cannot requeue SLURM job {job} ({reason}): resubmit it to resume"
    return f"requeued SLURM job {job}: it resumes from there when it starts again"


def install() -> None:
    """Wraps fairseq's train (an epoch), validate, validate_and_save and save_checkpoint (once per
    process)."""
    import fairseq_cli.train
    from fairseq import checkpoint_utils

    if getattr(fairseq_cli.train.validate_and_save, "__wrapped__", None) is None:
        fairseq_cli.train.validate_and_save = _stopping(fairseq_cli.train.validate_and_save)
        fairseq_cli.train.validate = _stoppable_validation(fairseq_cli.train.validate)
        fairseq_cli.train.train = _stoppable_epoch(fairseq_cli.train.train)
    if getattr(checkpoint_utils.save_checkpoint, "__wrapped__", None) is None:
        # fairseq keeps the best score as an attribute of the function it finds under this name
        checkpoint_utils.save_checkpoint = _atomic(checkpoint_utils.save_checkpoint)
        checkpoint_utils.PathManager = _atomic_copies(checkpoint_utils.PathManager)
        logging.getLogger(checkpoint_utils.__name__).addFilter(_without_retry_tracebacks)


def _stopping(validate_and_save):
    """After each update: fairseq's validate_and_save, then, if a stop was asked for on any rank, a save
    of checkpoint_last.pt (unless this update was just saved) and the stop."""
    @functools.wraps(validate_and_save)
    def wrapper(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch):
        valid_losses, should_stop = validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets,
                                                      end_of_epoch)
        if not _stop_agreed(trainer) or should_stop:  # a collective: every rank calls it every update
            return valid_losses, should_stop
        _stop_here(cfg, trainer, epoch_itr)
        return valid_losses, True
    return wrapper


def _stop_here(cfg, trainer, epoch_itr) -> None:
    """The agreed stop: checkpoint_last.pt saved unless it already holds this update (or the run has made
    none yet), then every rank waits for that save."""
    from fairseq import checkpoint_utils

    updates = trainer.get_num_updates()
    if _State.saved_update != updates and _State.start_update != updates:
        checkpoint_utils.save_checkpoint(cfg.checkpoint, trainer, epoch_itr, None)
    # no rank exits before rank 0 has saved: srun --kill-on-bad-exit stops every task once one exits 75
    _largest(trainer, 0.0)
    _State.stopped_at, _State.reports = updates, trainer.data_parallel_rank == 0
    logger.info(f"stopping after update {updates} ({_State.requested or 'another rank'} received)")


def _stoppable_epoch(train):
    """fairseq's train (one epoch), preceded by the validation a stop cut short (when the run resumes from
    that update) and by the stop check: a signal while fairseq set up stops before the first update. (A
    stop that would need a save waits for the end of the epoch's first update: fairseq's iterator cannot
    be saved before the epoch has begun.)"""
    @functools.wraps(train)
    def wrapper(cfg, trainer, task, epoch_itr):
        updates = trainer.get_num_updates()
        if _State.start_update is None:
            _State.start_update = updates
            _redo_cut_validation(cfg, trainer, task, epoch_itr)
        nothing_to_save = updates in (_State.start_update, _State.saved_update)
        if _stop_agreed(trainer) and nothing_to_save:  # a collective: every rank starts every epoch
            _stop_here(cfg, trainer, epoch_itr)
            return [None], True
        return train(cfg, trainer, task, epoch_itr)
    return wrapper


def _stoppable_validation(validate):
    """fairseq's validate, abandoned at the next batch once a stop is agreed on (every rank runs the same
    number of validation batches: fairseq pads the shards); the update is then marked in the save dir for
    the resumed run to validate. Returns no loss for an abandoned validation (nothing is best)."""
    @functools.wraps(validate)
    def wrapper(cfg, trainer, task, epoch_itr, subsets):
        valid_step = trainer.valid_step

        def checked_valid_step(sample, raise_oom=False):
            if _stop_agreed(trainer):
                raise _ValidationStopped
            return valid_step(sample, raise_oom)

        trainer.valid_step = checked_valid_step
        try:
            return validate(cfg, trainer, task, epoch_itr, subsets)
        except _ValidationStopped:
            updates = trainer.get_num_updates()
            if trainer.data_parallel_rank == 0:
                from fairseq_ext.outputs import write_text_file

                write_text_file(Path(cfg.checkpoint.save_dir) / PENDING_VALIDATION,
                                json.dumps({"num_updates": updates}) + "\n")
            _State.validation_cut = True
            logger.info(f"validation of update {updates} stopped ({_State.requested or 'another rank'} "
                        "received): it is redone when the run resumes")
            return [None for _ in subsets]
        finally:
            del trainer.valid_step  # the trainer's own method again
    return wrapper


def _redo_cut_validation(cfg, trainer, task, epoch_itr) -> None:
    """The validation a stop cut short, when this run resumes from its update (before any update of its
    own), with what fairseq's save would have made of it: the best score, and checkpoint_best.pt if it is
    the best (a copy of checkpoint_last.pt, which holds exactly this model)."""
    import fairseq_cli.train
    from fairseq import checkpoint_utils
    from fairseq.logging import progress_bar

    marker = Path(cfg.checkpoint.save_dir) / PENDING_VALIDATION
    if not marker.is_file():
        return
    updates = trainer.get_num_updates()
    if json.loads(marker.read_text(encoding="utf-8")).get("num_updates") == updates and \
            not cfg.dataset.disable_validation:
        logger.info(f"redoing the validation of update {updates}, cut short by the stop")
        # its record goes to common.log_file, as fairseq's train() would have it go (it adds the handler)
        records = logging.FileHandler(cfg.common.log_file) if cfg.common.log_file else logging.NullHandler()
        progress_bar.logger.addHandler(records)
        try:
            valid_loss = fairseq_cli.train.validate(cfg, trainer, task, epoch_itr,
                                                    cfg.dataset.valid_subset.split(","))[0]
        finally:
            progress_bar.logger.removeHandler(records)
            records.close()
        if _State.validation_cut:  # stopped again: still pending
            return
        save = checkpoint_utils.save_checkpoint
        best = max if cfg.checkpoint.maximize_best_checkpoint_metric else min
        is_best = not hasattr(save, "best") or best(valid_loss, save.best) == valid_loss
        save.best = best(valid_loss, getattr(save, "best", valid_loss))
        last = Path(cfg.checkpoint.save_dir) / f"checkpoint_last{cfg.checkpoint.checkpoint_suffix}.pt"
        if is_best and trainer.data_parallel_rank == 0 and last.is_file():
            best_file = last.with_name(f"checkpoint_best{cfg.checkpoint.checkpoint_suffix}.pt")
            checkpoint_utils.PathManager.copy(str(last), str(best_file), overwrite=True)
            logger.info(f"{best_file} is update {updates}'s model ({cfg.checkpoint.best_checkpoint_metric} "
                        f"{valid_loss})")
    _largest(trainer, 0.0)  # every rank has read the marker
    if trainer.data_parallel_rank == 0:
        marker.unlink(missing_ok=True)


def _stop_agreed(trainer) -> bool:
    """Whether any rank was asked to stop: all ranks then stop after the same update."""
    return _largest(trainer, float(_State.requested is not None)) > 0


def _largest(trainer, value: float) -> float:
    """The largest of the ranks' values (a collective: every rank must call it)."""
    if trainer.data_parallel_world_size == 1:
        return value
    import torch
    from fairseq.distributed import utils as distributed_utils

    tensor = torch.tensor([value], device=trainer.device)
    distributed_utils.all_reduce(tensor, group=trainer.data_parallel_process_group, op="max")
    return float(tensor.item())


def _atomic(save_checkpoint):
    """fairseq's save_checkpoint; on a failure to write, the partial files removed and one line."""
    @functools.wraps(save_checkpoint)
    def wrapper(cfg, trainer, epoch_itr, val_loss):
        try:
            saved = save_checkpoint(cfg, trainer, epoch_itr, val_loss)
        except OSError as err:
            for partial in Path(cfg.save_dir).glob("checkpoint*.pt.tmp"):
                partial.unlink(missing_ok=True)
            reason = err.strerror or str(err)
            raise CheckpointNotSaved(f"cannot save the checkpoint of update {trainer.get_num_updates()} in "
                                     f"{cfg.save_dir}: {reason} (the checkpoints saved before are "
                                     "intact)") from None
        _State.saved_update = trainer.get_num_updates()
        return saved
    return wrapper


def _atomic_copies(path_manager):
    """fairseq's PathManager whose copy of a local file writes DST.tmp and renames it into place."""
    class AtomicCopies(path_manager):
        @staticmethod
        def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
            if path_manager.path_requires_pathmanager(dst_path) or not overwrite:
                return path_manager.copy(src_path, dst_path, overwrite=overwrite)
            partial = f"{dst_path}.tmp"
            try:
                shutil.copyfile(src_path, partial)
                os.replace(partial, dst_path)
            finally:
                if os.path.lexists(partial):
                    os.unlink(partial)
            return True
    return AtomicCopies


def _without_retry_tracebacks(record: logging.LogRecord) -> bool:
    """fairseq logs the traceback of its last failed write before raising: the error is reported once,
    as one line, by the wrapper above."""
    return not (record.levelno >= logging.ERROR and record.funcName == "_torch_persistent_save")


def main(argv: Optional[list[str]] = None) -> int:
    """One rank of the local processes the launcher (fairseq_ext.training.launch) starts: ``CONFIG_DIR
    CONFIG_NAME HYDRA_ARGS``. The launcher starts it with the stop signals blocked, until
    run_fairseq_hydra_train listens."""
    from fairseq_ext.training import errors

    config_dir, config_name, *overrides = sys.argv[1:] if argv is None else argv
    with errors.translated(errors.save_dir_of(overrides)):  # as in the launcher: one line
        return run_fairseq_hydra_train(Path(config_dir), config_name, overrides)


if __name__ == "__main__":
    from fairseq_ext.cli import run_cli

    run_cli(main)
