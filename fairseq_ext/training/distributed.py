"""Data-parallel training on fairseq's own engine: who starts the processes, what fairseq is told.

A run has one of these topologies (:func:`detect_topology`):
  - one process;
  - ``--nproc-per-node N`` with no launcher around: our launcher (fairseq_ext.training.launch) starts N local
    processes itself, after the pre-flight checks;
  - torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): this process is
    one rank;
  - srun with several tasks (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, the step's node list):
    this task is one rank; the first node hosts the rendezvous on a port derived from the job id (or
    ``MASTER_PORT``).
fairseq then sees every multi-process run alike (:func:`fairseq_overrides`): one process per rank
(``distributed_no_spawn``), rendezvous ``env://``, NCCL on GPUs; on CPU gloo and ``legacy_ddp`` (fairseq's
``pytorch_ddp`` wrapper passes CUDA device ids).

Restoring a checkpoint under several processes: fairseq's rank 0 reads it (weights-only, with the allow-list
of :mod:`fairseq_ext.checkpoints`) and broadcasts it; the other ranks unpickle that with ``torch.load``, whose
weights-only default (torch >= 2.6) refuses the restored ``DictConfig``. :func:`trust_rank0_broadcasts`
makes those ranks trust what rank 0 of their own job sends; files are still loaded weights-only.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional

from fairseq_ext.errors import UserInputError

# the distributed_training.* settings the launcher derives from the topology
LAUNCHER_KEYS = ("distributed_world_size", "distributed_rank", "device_id", "distributed_init_method",
                 "distributed_no_spawn", "distributed_backend", "distributed_num_procs")


@dataclass(frozen=True)
class Topology:
    world_size: int
    rank: int = 0
    local_rank: int = 0
    started_by: str = "this launcher"  # or "torchrun", "srun"
    master_addr: str = "127.0.0.1"
    master_port: Optional[int] = None

    @property
    def external(self) -> bool:
        """The processes exist already (torchrun, srun): this one is a rank."""
        return self.started_by != "this launcher"


def detect_topology(nproc_per_node: Optional[int], environ: Mapping[str, str] = os.environ) -> Topology:
    """The topology from the launcher's environment; ``nproc_per_node``: --nproc-per-node, if given."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        topology = Topology(world_size=int(environ["WORLD_SIZE"]), rank=int(environ["RANK"]),
                            local_rank=int(environ.get("LOCAL_RANK", 0)), started_by="torchrun",
                            master_addr=environ.get("MASTER_ADDR", "127.0.0.1"),
                            master_port=int(environ["MASTER_PORT"]) if "MASTER_PORT" in environ else None)
        local_processes = int(environ.get("LOCAL_WORLD_SIZE", nproc_per_node or 1))
    elif "SLURM_STEP_ID" in environ and int(environ.get("SLURM_NTASKS", 1)) > 1:
        job_id = int(environ.get("SLURM_JOB_ID", 0))
        topology = Topology(world_size=int(environ["SLURM_NTASKS"]), rank=int(environ["SLURM_PROCID"]),
                            local_rank=int(environ.get("SLURM_LOCALID", 0)), started_by="srun",
                            master_addr=first_slurm_host(environ),
                            master_port=int(environ.get("MASTER_PORT", 10000 + job_id % 50000)))
        local_processes = int(environ.get("SLURM_STEP_TASKS_PER_NODE", "1").split("(")[0])
    else:
        return Topology(world_size=nproc_per_node or 1)
    if nproc_per_node is not None and nproc_per_node != local_processes:
        raise UserInputError(f"--nproc-per-node {nproc_per_node}, but {topology.started_by} started "
                             f"{local_processes} processes on this node: each one is a rank (drop "
                             f"--nproc-per-node)")
    return topology


def check_ranks_per_gpu(topology: Topology, visible_gpus: int,
                        environ: Mapping[str, str] = os.environ) -> None:
    """Refuses more ranks on this node than it has GPUs: fairseq's device_id (local rank modulo the GPUs)
    would put two ranks on one GPU. The node's GPUs: SLURM's allocation (SLURM_GPUS_ON_NODE, also when each
    task sees only its own GPU), else the visible ones."""
    if topology.started_by == "torchrun":
        ranks, gpus = int(environ.get("LOCAL_WORLD_SIZE", 1)), visible_gpus
        fix = "start torchrun with --nproc-per-node at most the GPUs"
    elif topology.started_by == "srun":
        ranks = int(environ.get("SLURM_STEP_TASKS_PER_NODE", "1").split("(")[0].split(",")[0])
        gpus = int(environ.get("SLURM_GPUS_ON_NODE", visible_gpus))
        fix = ("one task per GPU: scripts/slurm/*.sbatch start as many as --gpus-per-node; with your own "
               "srun, give --ntasks-per-node equal to the GPUs")
    else:
        return
    if ranks > gpus:
        raise UserInputError(f"{ranks} ranks on this node ({topology.started_by}) but {gpus} GPUs: two ranks "
                             f"would share a GPU; {fix}")


def first_slurm_host(environ: Mapping[str, str]) -> str:
    """The first host of the step's node list (``node[01-04]`` -> ``node01``), as scontrol expands it."""
    node_list = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
    if not node_list:
        raise UserInputError("running under srun but neither SLURM_STEP_NODELIST nor SLURM_JOB_NODELIST "
                             "is set")
    try:
        hosts = subprocess.run(["scontrol", "show", "hostnames", node_list], capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as err:
        raise UserInputError(f"cannot expand the SLURM node list {node_list!r} with scontrol: "
                             f"{err}") from None
    return hosts[0]


def free_port() -> int:
    """A TCP port free on this host now, for a rendezvous among local processes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fairseq_overrides(topology: Topology, on_cpu: bool) -> list[str]:
    """The distributed_training.* settings of this rank (and, off rank 0, no log file of its own)."""
    import torch

    if topology.world_size == 1:
        return ["distributed_training.distributed_world_size=1"]
    gpus = 0 if on_cpu else torch.cuda.device_count()
    settings = {
        "distributed_world_size": topology.world_size,
        "distributed_rank": topology.rank,
        # torchrun and srun may leave all GPUs of the node visible, or bind one per task
        "device_id": topology.local_rank % gpus if gpus else 0,
        "distributed_init_method": "env://",
        "distributed_no_spawn": "true",
        "distributed_backend": "gloo" if on_cpu else "nccl",
    }
    if on_cpu:
        settings["ddp_backend"] = "legacy_ddp"
    overrides = [f"distributed_training.{key}={value}" for key, value in settings.items()]
    if topology.rank > 0:  # rank 0 writes the logs (fairseq already saves checkpoints from rank 0 only)
        overrides += ["common.log_file=null", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    return overrides


def describe(topology: Topology, on_cpu: bool) -> str:
    """The one line that says how the processes train together."""
    where = f"rendezvous env:// on {topology.master_addr}"
    if on_cpu:
        return (f"{topology.world_size} processes on CPU ({topology.started_by}): distributed_backend=gloo, "
                f"ddp_backend=legacy_ddp (NCCL and pytorch_ddp need GPUs), {where}")
    return f"{topology.world_size} processes, one per GPU ({topology.started_by}): NCCL, {where}"


def check_launcher_keys(overrides: list[str]) -> None:
    """The launcher owns fairseq's process-group settings: a user's value would silently lose."""
    for item in overrides:
        key = item.split("=", 1)[0]
        if key.startswith("distributed_training.") and key.split(".", 1)[1] in LAUNCHER_KEYS:
            raise UserInputError(f"{key} is set by the launcher: choose the processes with --nproc-per-node "
                                 "N or start it under torchrun or srun")


def batch_plan(cfg, world_size: int, global_batch: Optional[int]) -> tuple[list[str], str]:
    """(overrides, the arithmetic as one line) for the batch: ``dataset.batch_size`` sequences per process
    x processes x ``update_freq``. With ``global_batch`` (sequences per update) the batch size per process is
    the config's, or the largest smaller one that splits ``global_batch`` evenly, and update_freq follows."""
    per_process = cfg.dataset.batch_size
    if global_batch is None:
        update_freq = cfg.optimization.update_freq[0]
        if per_process is None:
            return [], (f"{cfg.dataset.max_tokens} tokens per process (dataset.max_tokens) x {world_size} "
                        f"processes x update_freq {update_freq}")
        return [], (f"{per_process * world_size * update_freq} sequences per update = {per_process} per "
                    f"process (dataset.batch_size) x {world_size} processes x update_freq {update_freq}")
    if per_process is None:
        raise UserInputError("--global-batch counts sequences: the config batches by dataset.max_tokens; "
                             "set dataset.batch_size")
    fitting = [size for size in range(min(per_process, global_batch), 0, -1)
               if global_batch % (size * world_size) == 0]
    if not fitting:
        raise UserInputError(f"--global-batch {global_batch} sequences cannot be split evenly over "
                             f"{world_size} processes")
    size = fitting[0]
    update_freq = global_batch // (size * world_size)
    shrunk = "" if size == per_process else f", the config's {per_process} does not divide it"
    return ([f"dataset.batch_size={size}", f"optimization.update_freq=[{update_freq}]"],
            f"{global_batch} sequences per update = {size} per process (dataset.batch_size{shrunk}) x "
            f"{world_size} processes x update_freq {update_freq}")


def apply_compat_patches() -> None:
    """What fairseq training needs under torch >= 2.6, applied explicitly: the weights-only allow-list for
    checkpoints of every fairseq vintage (importing fairseq_ext.checkpoints registers it) and
    :func:`trust_rank0_broadcasts`. The launcher calls it in every training process
    (fairseq_ext.training.preemption.run_fairseq_hydra_train); fairseq_ext's ``--user-dir`` import calls it
    under a plain fairseq-hydra-train. Idempotent."""
    import fairseq_ext.checkpoints  # noqa: F401  (the allow-list)

    trust_rank0_broadcasts()


def trust_rank0_broadcasts() -> None:
    """Makes fairseq's object broadcast (checkpoint state from rank 0 to the other ranks) unpickle what
    rank 0 sent without torch's weights-only restriction (see :func:`apply_compat_patches`)."""
    import torch

    if torch.__version__ < "2.6":  # torch.load is not weights-only by default: nothing to do
        return
    from fairseq.distributed import utils as distributed_utils

    distributed_utils._broadcast_object_slow = broadcast_object_from_own_job


def broadcast_object_from_own_job(obj, src_rank: int, group, dist_device):
    """fairseq.distributed.utils._broadcast_object_slow (same bytes on the wire), except that the receiving
    ranks load the object with ``weights_only=False``: it comes from rank 0 of this job, which read the
    checkpoint file itself with weights-only loading."""
    import torch
    from fairseq.distributed.utils import broadcast, get_rank

    if get_rank(group) == src_rank:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = torch.frombuffer(bytearray(buffer.getbuffer()), dtype=torch.uint8).to(dist_device)
        broadcast(torch.LongTensor([len(data)]).to(dist_device), src=src_rank, group=group)
        broadcast(data, src=src_rank, group=group)
        return obj
    length = torch.LongTensor([0]).to(dist_device)
    broadcast(length, src=src_rank, group=group)
    data = torch.empty(int(length.item()), dtype=torch.uint8, device=dist_device)
    broadcast(data, src=src_rank, group=group)
    return torch.load(io.BytesIO(data.cpu().numpy().tobytes()), map_location="cpu", weights_only=False)
