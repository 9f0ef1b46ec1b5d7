"""Data-parallel training on fairseq's own engine, on CPU: restoring checkpoints under several processes,
the topologies the launcher reads (torchrun, srun), the SLURM script's batch arithmetic, and SQuAD
validation EM/F1 with 2 processes equal to single-process scoring of the same checkpoint. (Data-parallel
continued pretraining, stopped by a signal and resumed:
test_signalled_run_saves_at_the_next_update_and_resumes_as_if_uninterrupted in tests/test_pretrain.py.)"""

from __future__ import annotations

import argparse
import json
import os
import subprocess

import pytest
import torch

from fairseq_ext.checkpoints import load_checkpoint
from fairseq_ext.errors import UserInputError
from fairseq_ext.training import distributed, schedule
from tests.pretrain_fixtures import REPO, pretrain_env, training_records
from tests.squad_fixtures import VALID_ARTICLES, run_squad_script

SQUAD_VALID_QUESTIONS = 262  # VALID_ARTICLES


# --- restoring under several processes -------------------------------------------------------------------

def same(a, b) -> bool:
    """Deep equality of checkpoint states: tensors, DictConfigs, Namespaces, numpy values, containers."""
    from omegaconf import DictConfig, OmegaConf

    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, DictConfig) or isinstance(b, DictConfig):
        return type(a) is type(b) and OmegaConf.to_container(a) == OmegaConf.to_container(b)
    if isinstance(a, argparse.Namespace):
        return type(a) is type(b) and vars(a) == vars(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def receive_restored_states(rank: int, port: int, paths: list[str]) -> None:
    """One of 2 gloo processes: fairseq's rank 0 loads each checkpoint as its Trainer does and broadcasts
    it; rank 1 checks that what it received equals what it reads from the file itself."""
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils

    # what the launcher does in every training process (and --user-dir under a plain fairseq-hydra-train)
    import fairseq_ext.plugin  # noqa: F401

    distributed.apply_compat_patches()

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    for path in paths:
        state = checkpoint_utils.load_checkpoint_to_cpu(path) if rank == 0 else None
        received = distributed_utils.broadcast_object(state, src_rank=0, dist_device=torch.device("cpu"),
                                                       group=distributed_utils.get_global_group())
        if rank == 1:
            assert same(received, checkpoint_utils.load_checkpoint_to_cpu(path)), path
    torch.distributed.destroy_process_group()


def test_rank0_broadcasts_restored_checkpoints_of_every_vintage(tiny_pretrained_checkpoint, legacy_checkpoint,
                                                                tiny_squad_checkpoint):
    """torch >= 2.6 loads weights-only by default; the state rank 0 restored holds omegaconf DictConfigs
    (and argparse Namespaces for fairseq 0.9/0.10 checkpoints), which the other ranks must accept."""
    import torch.multiprocessing as mp

    paths = [str(p) for p in (tiny_pretrained_checkpoint, legacy_checkpoint, tiny_squad_checkpoint)]
    mp.start_processes(receive_restored_states, args=(distributed.free_port(), paths), nprocs=2,
                       start_method="spawn")


def test_files_are_still_loaded_weights_only(tmp_path):
    """Trusting rank 0's broadcasts does not extend to files: a DictConfig in a file is refused."""
    from omegaconf import OmegaConf

    distributed.trust_rank0_broadcasts()
    torch.save({"model": {}, "cfg": OmegaConf.create({"model": {"_name": "roberta"}})}, tmp_path / "cfg.pt")
    with pytest.raises(UserInputError, match=r"holds a Python object that torch does not load for safety "
                                             r"\(omegaconf.dictconfig.DictConfig\)"):
        load_checkpoint(tmp_path / "cfg.pt")


# --- topologies ----------------------------------------------------------------------------------------

def fake_scontrol(tmp_path, monkeypatch) -> None:
    """An scontrol on PATH that expands node lists the way SLURM's does for node[01-02]."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/usr/bin/env bash\n[[ "$*" == "show hostnames node[01-02]" ]] && '
                        'printf "node01\\nnode02\\n"\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_topologies(tmp_path, monkeypatch):
    assert distributed.detect_topology(None, {}) == distributed.Topology(world_size=1)
    assert distributed.detect_topology(4, {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}).world_size == 4

    torchrun = {"RANK": "5", "WORLD_SIZE": "16", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "8",
                "MASTER_ADDR": "node01", "MASTER_PORT": "29500"}
    assert distributed.detect_topology(None, torchrun) == distributed.Topology(
        world_size=16, rank=5, local_rank=1, started_by="torchrun", master_addr="node01", master_port=29500)
    assert distributed.detect_topology(8, torchrun).rank == 5
    with pytest.raises(UserInputError, match="--nproc-per-node 2, but torchrun started 8 processes"):
        distributed.detect_topology(2, torchrun)

    fake_scontrol(tmp_path, monkeypatch)
    srun = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "16", "SLURM_PROCID": "9",
            "SLURM_LOCALID": "1", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_STEP_TASKS_PER_NODE": "8(x2)"}
    topology = distributed.detect_topology(None, srun)
    assert topology == distributed.Topology(world_size=16, rank=9, local_rank=1, started_by="srun",
                                            master_addr="node01", master_port=10000 + 4242)
    overrides = distributed.fairseq_overrides(topology, on_cpu=True)
    assert overrides == [
        "distributed_training.distributed_world_size=16", "distributed_training.distributed_rank=9",
        "distributed_training.device_id=0", "distributed_training.distributed_init_method=env://",
        "distributed_training.distributed_no_spawn=true", "distributed_training.distributed_backend=gloo",
        "distributed_training.ddp_backend=legacy_ddp",
        "common.log_file=null", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    # the batch script itself (no step) is not a rank
    batch_script = {k: v for k, v in srun.items() if k != "SLURM_STEP_ID"}
    assert distributed.detect_topology(None, batch_script).world_size == 1


def test_launcher_owns_the_process_group_settings():
    with pytest.raises(UserInputError, match="distributed_world_size is set by the launcher"):
        distributed.check_launcher_keys(["optimization.lr=[0.1]",
                                         "distributed_training.distributed_world_size=8"])
    distributed.check_launcher_keys(["distributed_training.find_unused_parameters=true"])


def test_global_batch_arithmetic():
    """--global-batch on a config that states its batch (no recipe): split over the processes, the batch per
    process the config's or the largest smaller one that divides evenly (fairseq_ext.training.schedule)."""
    stated = schedule.Stated(batch_size=16, update_freq=3, max_update=100, max_epoch=0, lr=1e-3,
                             warmup_updates=6, total_num_update=100)
    assert schedule.resolve(stated, None, set(), 2, None).lines()[0] == (
        "batch: 96 sequences per update = 16 per process (dataset.batch_size) x 2 processes x update_freq 3")
    assert schedule.resolve(stated, None, set(), 16, None, 2048).settings == {
        "dataset.batch_size": 16, "optimization.update_freq": [8]}
    plan = schedule.resolve(stated, None, set(), 4, None, 48)  # 16 does not divide 48 / 4
    assert plan.overrides() == ["++dataset.batch_size=12", "++optimization.update_freq=[1]"]
    assert plan.lines()[0] == ("batch: 48 sequences per update = 12 per process (dataset.batch_size, the "
                               "config's 16 does not divide it) x 4 processes x update_freq 1")
    with pytest.raises(UserInputError, match="--global-batch 2048 sequences cannot be split evenly over 24"):
        schedule.resolve(stated, None, set(), 24, None, 2048)


def test_slurm_script_runs_one_rank_per_task(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path,
                                             monkeypatch):
    """scripts/slurm/pretrain.sbatch with a stand-in srun that runs its command as task 0 of 16 on 2 nodes,
    here with --check-only: rank 0 checks the run and prints the batch arithmetic for the allocation (the
    config's 16 sequences per GPU; with dataset.batch_size=12, 8 per GPU)."""
    fake_scontrol(tmp_path, monkeypatch)
    srun = tmp_path / "bin" / "srun"
    srun.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {tmp_path}/srun.args\n'
                    'while [[ $1 == --* ]]; do shift; done\n'
                    'SLURM_STEP_ID=0 SLURM_NTASKS=16 SLURM_PROCID=0 SLURM_LOCALID=0 '
                    'SLURM_STEP_NODELIST="node[01-02]" SLURM_STEP_TASKS_PER_NODE="8(x2)" exec "$@"\n')
    srun.chmod(0o755)
    env = {**pretrain_env(), "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "16", "SLURM_SUBMIT_DIR": str(REPO)}
    result = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "pretrain.sbatch"), str(wiki_data_bin),
                             str(tmp_path / "run"), str(tiny_pretrained_checkpoint), "dataset.batch_size=12",
                             "model.max_positions=128", "task.tokens_per_sample=128",  # the tiny checkpoint's
                             "--check-only"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"starting from {tiny_pretrained_checkpoint} (roberta, 50265 embedding rows, update 0 of 12500)" \
        in result.stderr
    assert "16 processes on CPU (srun): distributed_backend=gloo, ddp_backend=legacy_ddp" in result.stderr
    assert ("batch: 2048 sequences per update = 8 per process (dataset.batch_size, the config's 12 does not "
            "divide it) x 16 processes x update_freq 16") in result.stderr
    args = (tmp_path / "srun.args").read_text().splitlines()
    assert args[:3] == ["--kill-on-bad-exit=1", "scripts/pretrain.sh", "--config"]
    # the script's arguments, then ours; the global batch is the config's recipe (no GLOBAL_BATCH given)
    assert args[-4:] == ["dataset.batch_size=12", "model.max_positions=128", "task.tokens_per_sample=128",
                         "--check-only"] and "--global-batch" not in args


@pytest.mark.parametrize("gpus_per_node, nodes, cpus_on_node, expected", [
    (0, 1, 2, []),  # CPU-only: the job's own tasks
    (4, 1, 64, ["--ntasks-per-node=4", "--ntasks=4", "--cpus-per-task=16"]),  # --gpus-per-node=4 over 8 tasks
    (8, 2, 64, ["--ntasks-per-node=8", "--ntasks=16", "--cpus-per-task=8"]),
    (16, 1, 128, ["--ntasks-per-node=16", "--ntasks=16", "--cpus-per-task=8"]),
])
@pytest.mark.parametrize("script", ["pretrain.sbatch", "finetune_squad2.sbatch"])
def test_sbatch_scripts_start_one_task_per_gpu(script, gpus_per_node, nodes, cpus_on_node, expected,
                                               tmp_path):
    """Whatever --gpus-per-node the job was submitted with (the script's --ntasks-per-node default is not
    edited), srun starts one task per GPU within the job's CPUs."""
    srun = tmp_path / "srun"
    srun.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {tmp_path}/srun.args\n')
    srun.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_SUBMIT_DIR": str(REPO),
           "SLURM_GPUS_ON_NODE": str(gpus_per_node), "SLURM_JOB_NUM_NODES": str(nodes),
           "SLURM_CPUS_ON_NODE": str(cpus_on_node), "SLURM_NTASKS_PER_NODE": "8"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / script), "DATA", "SAVE", "CKPT"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "srun.args").read_text().splitlines()
    assert args[:1 + len(expected)] == ["--kill-on-bad-exit=1", *expected]
    per_node = gpus_per_node or 8  # CPU-only: the job's --ntasks-per-node
    assert f"{nodes} nodes x {per_node} tasks, {gpus_per_node} GPUs per node" in result.stdout


@pytest.mark.parametrize("script", ["pretrain.sbatch", "finetune_squad2.sbatch"])
def test_sbatch_scripts_start_from_a_checkpoint_from_scratch_or_resume(script, tmp_path):
    """CHECKPOINT seeds a fresh run, "scratch" starts from a random initialisation, and a resubmission
    needs no checkpoint (the launcher resumes from SAVE_DIR/checkpoint_last.pt). --global-batch only when
    GLOBAL_BATCH is set: otherwise the config's recipe (or, for a tiny config, its own batch) holds."""
    srun = tmp_path / "srun"
    srun.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {tmp_path}/srun.args\n')
    srun.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_SUBMIT_DIR": str(REPO)}

    def launcher_args(*args, **variables):
        result = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / script), *args],
                                capture_output=True, text=True, env={**env, **variables})
        assert result.returncode == 0, result.stderr
        args = (tmp_path / "srun.args").read_text().splitlines()
        return args[args.index("--save-dir") + 2:]

    assert launcher_args("DATA", "SAVE", "model.pt", "k=v") == ["--restore", "model.pt", "k=v"]
    assert launcher_args("DATA", "SAVE", "scratch") == ["--from-scratch"]
    assert launcher_args("DATA", "SAVE", "scratch", GLOBAL_BATCH="96") == [
        "--from-scratch", "--global-batch", "96"]
    assert launcher_args("DATA", "SAVE", "k=v") == ["k=v"]
    assert launcher_args("DATA", "SAVE") == []
    usage = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / script), "DATA"], capture_output=True,
                           text=True, env=env)
    assert usage.returncode == 2 and "DATA_BIN SAVE_DIR [CHECKPOINT | scratch]" in usage.stderr


@pytest.mark.parametrize("gpus", [1, 2, 4, 8, 16])
def test_more_ranks_on_a_node_than_gpus_are_refused(gpus):
    """Two ranks on one GPU (fairseq's device_id = local rank modulo the GPUs) is refused, under srun (the
    node's GPUs from SLURM, also when each task sees only its own) and torchrun."""
    srun = {"SLURM_STEP_TASKS_PER_NODE": f"{gpus}(x2)", "SLURM_GPUS_ON_NODE": str(gpus)}
    on_srun = distributed.Topology(world_size=2 * gpus, started_by="srun")
    distributed.check_ranks_per_gpu(on_srun, visible_gpus=gpus, environ=srun)
    distributed.check_ranks_per_gpu(on_srun, visible_gpus=1, environ=srun)  # bound: one visible per task
    with pytest.raises(UserInputError, match=f"^{2 * gpus} ranks on this node \\(srun\\) but {gpus} GPUs: "
                       "two ranks would share a GPU; one task per GPU"):
        distributed.check_ranks_per_gpu(on_srun, gpus, {**srun, "SLURM_STEP_TASKS_PER_NODE": f"{2 * gpus}"})
    on_torchrun = distributed.Topology(world_size=gpus + 1, started_by="torchrun")
    distributed.check_ranks_per_gpu(on_torchrun, gpus, {"LOCAL_WORLD_SIZE": str(gpus)})
    with pytest.raises(UserInputError, match=f"{gpus + 1} ranks on this node \\(torchrun\\) but {gpus} GPUs"):
        distributed.check_ranks_per_gpu(on_torchrun, gpus, {"LOCAL_WORLD_SIZE": str(gpus + 1)})


def test_launcher_refuses_more_srun_tasks_than_gpus(tiny_pretrained_checkpoint, wiki_data_bin, tmp_path,
                                                     monkeypatch):
    """The launcher itself, as task 0 of 8 on a node whose job has 4 GPUs (sbatch --gpus-per-node=4 with
    an srun of its own that kept 8 tasks): one line, before anything is trained."""
    from fairseq_ext.training import launch

    fake_scontrol(tmp_path, monkeypatch)
    for key, value in {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "8", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_STEP_NODELIST": "node[01-02]",
                       "SLURM_STEP_TASKS_PER_NODE": "8", "SLURM_GPUS_ON_NODE": "4"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(launch, "training_on_cpu", lambda cfg: False)
    monkeypatch.setattr(launch, "gpu_count", lambda: 4)
    with pytest.raises(UserInputError, match="8 ranks on this node \\(srun\\) but 4 GPUs"):
        launch.main(["--config", "tiny", "--data", str(wiki_data_bin), "--save-dir", str(tmp_path / "run"),
                     "--restore", str(tiny_pretrained_checkpoint), "--check-only"])


# --- SQuAD v2 with 2 processes -----------------------------------------------------------------------------

@pytest.mark.slow
def test_two_process_squad_validation_equals_single_process_scoring(tiny_pretrained_checkpoint,
                                                                     squad2_data_bin, gpt2_bpe_dir, tmp_path):
    """Fine-tuning from the masked-LM checkpoint on 2 processes; the EM/F1 validation logged for the last
    epoch (each process scores the whole questions of its batches, the sums are all-reduced) equal those of
    predict_squad2.py + the official metric on the saved checkpoint, in one process. The tiny model would
    answer nothing (EM = F1 = the share of unanswerable questions): a null threshold out of reach makes it
    answer wherever it finds a span, so that F1 sums partial overlaps."""
    save_dir = tmp_path / "run"
    done = run_squad_script("finetune_squad2.sh", "--config", "squad2_tiny", "--data", squad2_data_bin,
                            "--restore", tiny_pretrained_checkpoint, "--save-dir", save_dir,
                            "--nproc-per-node", "2", "optimization.max_epoch=3",
                            "+task.null_score_diff_threshold=1000")  # not in the YAML: hydra's +
    assert "training on 2 devices" in done.stdout
    assert f"Loaded checkpoint {tiny_pretrained_checkpoint}" in done.stdout
    last = training_records(save_dir, "valid")[-1]
    state = load_checkpoint(save_dir / "checkpoint_last.pt")
    assert state["optimizer_history"][-1]["num_updates"] == int(last["valid_num_updates"])

    out = tmp_path / "pred"
    run_squad_script("predict_squad2.py", "--checkpoint", save_dir / "checkpoint_last.pt", "--data",
                     squad2_data_bin / "valid.json", "--gpt2-bpe", gpt2_bpe_dir, "--out", out,
                     "--batch-size", "64")
    results = json.loads((out / "eval_results.json").read_text())
    print(f"2 processes, {', '.join(VALID_ARTICLES)}: logged EM {last['valid_em']} F1 {last['valid_f1']} "
          f"(F1 in the checkpoint {state['extra_state']['val_loss']!r}); one process: {json.dumps(results)}")
    assert results["total"] == SQUAD_VALID_QUESTIONS
    assert 0 < results["HasAns_f1"] and results["f1"] != results["exact"]  # partial overlaps were summed
    # as fairseq logs them ({:g}), and the F1 saved with the checkpoint at full precision
    assert (last["valid_em"], last["valid_f1"]) == (f"{results['exact']:g}", f"{results['f1']:g}")
    assert state["extra_state"]["val_loss"] == pytest.approx(results["f1"], rel=1e-12, abs=0)
