"""Checks a fairseq training run before it starts, then runs fairseq-hydra-train on it, in one process or
data-parallel in several.

    scripts/pretrain.sh | scripts/finetune_squad2.sh | roberta-train | python -m fairseq_ext.training.launch
        --config NAME --data DIR --save-dir DIR [--restore CKPT] [--nproc-per-node N]
        [--global-batch SEQUENCES] [--plan FILE] [recipe.KEY=VALUE ...] [KEY=VALUE ...]

The config is composed exactly as fairseq-hydra-train composes it (YAML + overrides) and checked once,
before any training process starts (see fairseq_ext.training.preflight). The processes are this one, N
local ones started here (--nproc-per-node N), or those torchrun or srun started, each running this same
command (see fairseq_ext.training.distributed): rank 0 checks, writes the logs and the checkpoints.
A run whose save dir already holds checkpoint_last.pt resumes from it (the --restore checkpoint only
seeds a fresh run), so an interrupted job continues when the same command is run again; once the run
has reached max_update, running it again reports that and does nothing. SIGUSR1 or SIGTERM during training
saves checkpoint_last.pt after the update in progress and exits 75 (fairseq_ext.training.preemption).
scripts/pretrain.sh (masked LM, configs/pretraining) and scripts/finetune_squad2.sh (SQuAD v2,
configs/finetuning) run this module; the checks follow the config's task. Its messages are those of the
launcher, ``launch_train``. The batch per process, update_freq, the update count, warmup and lr follow
from the config's recipe, the world size and the training set (fairseq_ext.training.schedule); rank 0
prints that plan, --plan writes it as JSON, and --check-only with --nproc-per-node N plans for N GPUs that
are not there.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from fairseq_ext.checkout import checkout_path
from fairseq_ext.cli import bounded_int, positive_int, run_cli
from fairseq_ext.errors import UserInputError
from fairseq_ext.training import distributed, errors, progress, schedule
from fairseq_ext.training.lock import held_descriptors, hold_save_dir, release_all
from fairseq_ext.training.preemption import (
    PREEMPTED,
    STOP_SIGNALS,
    block_stop_signals,
    catch_stop_signals,
    run_fairseq_hydra_train,
    stop_requested,
    stopped_before_training,
)
from fairseq_ext.training.preflight import (
    FROM_SCRATCH,
    check_data,
    check_devices,
    check_given_paths,
    compose_config,
    drop_records_after,
    plugin_dir,
    preflight,
    quiet_logging,
    report,
    resolve_config,
)

# the command the user typed, in --help and error lines: scripts/pretrain.sh and finetune_squad2.sh name
# themselves in PROG_ENV; else launch_train.py
PROG_ENV = "ROBERTA_TRAIN_PROG"
PROG = os.environ.get(PROG_ENV) or "launch_train.py"


def parse_args(argv: Optional[Sequence[str]]):
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog="Any KEY=VALUE argument is a hydra override passed on to fairseq-hydra-train "
        "(e.g. optimization.max_update=2000 dataset.batch_size=16 hydra.run.dir=DIR) and wins over the "
        "derived schedule; recipe.KEY=VALUE changes the config's recipe (recipe.epochs=3). Under torchrun or "
        "srun (several tasks) run the same command in every process, without --nproc-per-node.",
    )
    parser.add_argument("--config", required=True,
                        help="config name in --config-dir (without .yaml), or the path of a YAML file")
    parser.add_argument("--config-dir", default=str(checkout_path("configs", "pretraining")),
                        help="directory of the hydra configs (default: configs/pretraining)")
    parser.add_argument("--data", required=True, help="binarized data directory (task.data)")
    parser.add_argument("--save-dir", required=True, help="checkpoint directory (checkpoint.save_dir)")
    parser.add_argument("--restore", help="checkpoint to start from (checkpoint.restore_file); "
                        "ignored when SAVE_DIR/checkpoint_last.pt exists (the run then resumes)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="start from a random initialisation, whatever checkpoint the config names (else "
                        "fine-tuning needs --restore); a run in SAVE_DIR still resumes")
    parser.add_argument("--nproc-per-node", type=bounded_int(1, 64),  # nodes hold 4-16 GPUs
                        help="data-parallel processes to start on this machine: one per GPU, or N on CPU "
                        "(gloo); default: every visible GPU, 1 on CPU")
    parser.add_argument("--global-batch", type=positive_int, metavar="SEQUENCES",
                        help="sequences (SQuAD: windows) per update across all processes (default: the "
                        "recipe's): the batch size per process is the config's (or the largest smaller one "
                        "that divides evenly) and update_freq follows; another than the recipe's keeps its "
                        "epochs or sequences and scales the lr by its rule")
    parser.add_argument("--verbose", action="store_true",
                        help="show fairseq's console output as it is (JSON stats, the model, hydra's "
                        "warnings) instead of one progress line per log interval, and the traceback of a "
                        "failure (else one line, and the traceback in SAVE_DIR/launch_error.log)")
    parser.add_argument("--check-only", action="store_true",
                        help="check the config, data and checkpoint and print the plan (not the GPUs: usable "
                        "on a login node; with --nproc-per-node N, planned for N GPUs), do not train")
    parser.add_argument("--plan", metavar="FILE", type=Path,
                        help="write the resolved batch and schedule as JSON (world_size, batch_size per "
                        "process, update_freq, global_batch, max_update, warmup_updates, lr, final_lr, ...)")
    args, overrides = parser.parse_known_args(argv)
    for item in overrides:
        if "=" not in item or item.startswith("-"):
            parser.error(f"unrecognized argument: {item} (hydra overrides are KEY=VALUE)")
    return args, overrides


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        return launch(argv)
    finally:
        release_all()  # the save dir's lock, for a caller in this process (the tests); an exit drops it too


def launch(argv: Optional[Sequence[str]] = None) -> int:
    args, overrides = parse_args(argv)
    with errors.translated(Path(args.save_dir), args.verbose):  # fairseq's exceptions: one line
        return start(args, overrides)


def start(args, overrides: list[str]) -> int:
    if args.from_scratch and args.restore:
        raise UserInputError("--from-scratch and --restore CKPT exclude each other: choose one")
    recipe_overrides, overrides = schedule.split_overrides(overrides)
    distributed.check_launcher_keys(overrides)
    if args.verbose:  # read by every training process (fairseq_ext.training.progress)
        os.environ[progress.VERBOSE_ENV] = "1"
    config_dir, config_name = resolve_config(args.config, args.config_dir)
    check_given_paths(args.data, args.restore)  # before fairseq and hydra load (seconds): a typo fails fast
    recipe = schedule.read_recipe(config_dir, config_name, recipe_overrides)
    config_dir = schedule.without_recipe(config_dir, config_name)  # what hydra and fairseq read
    overrides = [
        f"common.user_dir={plugin_dir()}",
        f"task.data={':'.join(str(Path(p).resolve()) for p in args.data.split(':'))}",
        f"checkpoint.save_dir={Path(args.save_dir).resolve()}",
        *([f"checkpoint.restore_file={Path(args.restore).resolve()}"] if args.restore else []),
        *(FROM_SCRATCH if args.from_scratch else []),
        *overrides,
    ]
    topology = distributed.detect_topology(args.nproc_per_node)
    checks = topology.rank == 0  # under torchrun/srun rank 0 checks; the others only share its decisions
    with quiet_logging():
        cfg = compose_config(config_dir, config_name, overrides)
        if checks and not args.check_only:  # before the save dir is read: it may be a running training's
            hold_save_dir(cfg.checkpoint.save_dir, create=False)
        on_cpu = training_on_cpu(cfg)
        if topology.external and not on_cpu:
            distributed.check_ranks_per_gpu(topology, gpu_count())
        if not topology.external and not on_cpu:
            gpus = gpu_count()
            if args.nproc_per_node is None:
                topology = distributed.Topology(world_size=gpus)
            elif args.nproc_per_node > gpus and not args.check_only:
                raise UserInputError(f"--nproc-per-node {args.nproc_per_node} but {gpus} GPUs are visible "
                                     "(one process per GPU; common.cpu=true trains on CPU)")
        if checks:
            check_data(cfg, [Path(p) for p in cfg.task.data.split(":")])
        run_plan = schedule.plan_run(cfg, recipe, overrides, topology.world_size, args.global_batch,
                                     count=checks)
        run_plan.apply(cfg)
        plan = preflight(cfg, checks=checks, from_scratch=args.from_scratch)
    if plan.finished:
        return 0
    if checks:
        if topology.world_size > 1:  # planned here for GPUs elsewhere: described as on those
            planned_for_gpus = args.check_only and not topology.external and not cfg.common.cpu
            report(distributed.describe(topology, on_cpu and not planned_for_gpus))
        run_plan.announce(report, args.plan)
    if args.check_only:
        return 0
    if checks:
        check_devices(cfg)
        locking = hold_save_dir(cfg.checkpoint.save_dir)  # one training per save dir, until this one ends
        if locking:
            report(locking)
        if plan.resumed_updates is not None and cfg.common.log_file:
            dropped = drop_records_after(Path(cfg.common.log_file), plan.resumed_updates)
            if dropped:
                report(f"{cfg.common.log_file}: removed {dropped} records of updates after "
                       f"{plan.resumed_updates} (the resumed run does them again)")
    save_dir = Path(cfg.checkpoint.save_dir)
    hydra_defaults = [f"hydra.run.dir={save_dir}", "hydra.job.chdir=false"]  # .hydra/ + log in save_dir
    given = {item.split("=", 1)[0] for item in overrides}
    hydra_args = [item for item in hydra_defaults if item.split("=", 1)[0] not in given]
    hydra_args += overrides + plan.resume + list(plan.derived) + run_plan.overrides()
    if stop_requested():  # SIGUSR1/SIGTERM during the checks
        return stopped_before_training(reports=checks)
    if topology.world_size == 1:
        return run_fairseq_hydra_train(config_dir, config_name,
                                       hydra_args + distributed.fairseq_overrides(topology, on_cpu))
    if topology.external:
        return run_rank(topology, on_cpu, config_dir, config_name, hydra_args)
    topology = dataclasses.replace(topology, master_port=distributed.free_port())
    return run_local_processes(topology, on_cpu, config_dir, config_name, hydra_args)


def training_on_cpu(cfg) -> bool:
    import torch

    return cfg.common.cpu or not torch.cuda.is_available()


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def run_local_processes(topology, on_cpu: bool, config_dir: Path, config_name: str,
                        hydra_args: list[str]) -> int:
    """topology.world_size fairseq-hydra-train processes on this machine, one per rank (as torchrun would
    start them). SIGUSR1 and SIGTERM are passed on to them (they start with these signals blocked until
    they listen: one in between waits instead of killing them): they save and stop after the same update
    (fairseq_ext.training.preemption) and this returns PREEMPTED. They inherit the save dir's lock. The
    first one to fail stops the others, as does Ctrl-C. Returns the first failure's exit status, else
    PREEMPTED if they stopped so, else 0."""
    env = {**os.environ, "MASTER_ADDR": topology.master_addr, "MASTER_PORT": str(topology.master_port),
           "WORLD_SIZE": str(topology.world_size), "LOCAL_WORLD_SIZE": str(topology.world_size)}
    processes = []

    def pass_on(signum, frame):
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in STOP_SIGNALS}
    try:
        for rank in range(topology.world_size):
            rank_topology = dataclasses.replace(topology, rank=rank, local_rank=rank)
            command = [sys.executable, "-m", "fairseq_ext.training.preemption", str(config_dir), config_name,
                       *hydra_args, *distributed.fairseq_overrides(rank_topology, on_cpu)]
            rank_env = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            processes.append(subprocess.Popen(command, env=rank_env, preexec_fn=block_stop_signals,
                                              pass_fds=held_descriptors()))
        if stop_requested():  # came before pass_on listened
            pass_on(signal.Signals[stop_requested()], None)
        while True:
            statuses = [process.poll() for process in processes]
            failed = [status for status in statuses if status not in (None, 0, PREEMPTED)]
            if failed:
                return failed[0] if failed[0] > 0 else 128 - failed[0]  # killed by a signal: 128 + its number
            if None not in statuses:
                return PREEMPTED if PREEMPTED in statuses else 0
            time.sleep(0.5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait()


def run_rank(topology, on_cpu: bool, config_dir: Path, config_name: str, hydra_args: list[str]) -> int:
    """This process as one rank of a data-parallel run started by torchrun or srun (fairseq reads the
    rendezvous from MASTER_*)."""
    import torch.distributed

    os.environ["MASTER_ADDR"] = topology.master_addr
    os.environ["MASTER_PORT"] = str(topology.master_port)
    status = run_fairseq_hydra_train(config_dir, config_name,
                                     hydra_args + distributed.fairseq_overrides(topology, on_cpu))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return status


def cli() -> None:
    """The ``roberta-train`` command (and scripts/pretrain.sh, finetune_squad2.sh): from its first line a
    SIGUSR1/SIGTERM asks for a stop (exit 75) instead of killing the launcher."""
    catch_stop_signals()
    run_cli(main, prog=PROG)


if __name__ == "__main__":  # scripts/pretrain.sh and scripts/finetune_squad2.sh
    cli()
