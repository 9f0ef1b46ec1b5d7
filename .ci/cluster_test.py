"""make cluster-test: the SLURM scripts run for real, on a one-node SLURM cluster started on this machine.

  1. installs Debian's slurm-wlm and munge if they are missing (apt-get; needs root);
  2. starts munged, slurmctld and slurmd with a slurm.conf for this node (2 CPUs), all state under the
     work directory; they are stopped at the end, whatever happens;
  3. packs the environment with scripts/pack_env.sh and unpacks it into WORK/shared, which stands in for
     the cluster's shared filesystem (with the data and the checkpoints);
  4. prepares tiny data (wiki paragraphs, SQuAD articles from ../shared) and a tiny masked-LM checkpoint;
  5. submits scripts/slurm/pretrain.sbatch (continued pretraining from that checkpoint) and
     scripts/slurm/finetune_squad2.sbatch (fine-tuning from the pretraining job's checkpoint, once that job
     has succeeded) with ENV_DIR=the unpacked env: 2 tasks each, CPU, data-parallel;
  6. submits pretrain.sbatch once more, into another save dir, sends its tasks SIGUSR1 (as SLURM's
     --signal=USR1@120 does before the time limit) once it has logged update SIGNAL_AFTER_UPDATE: it saves,
     exits 75 and the script requeues it; it resumes and must end with the same checkpoint (num_updates and
     every tensor) as the undisturbed pretraining job (docs/preemption.md);
  7. waits, prints sacct's record of the jobs and the last lines of their logs, and fails unless all
     completed and wrote their checkpoints.

    python .ci/cluster_test.py [--work-dir DIR] [--shared-dir ../shared]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fairseq_ext.squad.settings import TINY  # noqa: E402  (squad2_tiny.yaml's windows)

CPUS = 2
PRETRAIN_UPDATES = 20
# the seed checkpoint is at update 10; tiny.yaml logs every 5 updates and saves every 10: the signal comes
# between the saves at 10 and 20
SIGNAL_AFTER_UPDATE = 15
SQUAD_EPOCHS = 2
SQUAD_TRAIN_ARTICLES = slice(0, 1)  # of the shared SQuAD 2.0 dev part
SQUAD_VALID_ARTICLES = slice(1, 2)
JOB_END_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                  "BOOT_FAIL", "DEADLINE")


def step(message: str) -> None:
    print(f"cluster-test [{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def run(command: Sequence, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


def ensure_slurm() -> None:
    missing = [tool for tool in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sacct")
               if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"cluster-test: {', '.join(missing)} missing and not root: apt-get install slurm-wlm munge")
    step(f"installing slurm-wlm and munge ({', '.join(missing)} missing)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"], env=env,
        stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """munged + slurmctld + slurmd for this one node; every file under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.socket = root / "munge" / "munge.socket"
        self.pid_files = [root / "slurmd.pid", root / "slurmctld.pid", root / "munge" / "munged.pid"]

    @property
    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        for name in ("munge", "munge-key", "state", "spool", "log"):
            (self.root / name).mkdir(parents=True)
        (self.root / "munge-key").chmod(0o700)
        key = self.root / "munge-key" / "munge.key"
        run(["mungekey", "--create", "--keyfile", key])
        run(["munged", "--force", f"--socket={self.socket}", f"--key-file={key}",
             f"--pid-file={self.pid_files[2]}", f"--log-file={self.root / 'log' / 'munged.log'}",
             f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(SLURM_CONF.format(root=self.root, host=host, socket=self.socket, cpus=CPUS,
                                               ctld_port=free_port(), slurmd_port=free_port()))
        run(["slurmctld", "-f", self.conf])
        run(["slurmd", "-f", self.conf])
        for _ in range(60):
            state = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True,
                                   env=self.env).stdout.strip()
            if state == "idle":
                step(f"SLURM up: node {host}, {CPUS} CPUs, config {self.conf}")
                return
            time.sleep(1)
        raise RuntimeError(f"the SLURM node did not become idle (state {state!r}); see {self.root / 'log'}")

    def stop(self) -> None:
        for pid_file in self.pid_files:
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        step("SLURM daemons stopped")

    def submit(self, script: str, args: Sequence, env: dict, *options: str) -> str:
        done = run(["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
                    "--gpus-per-node=0", "--time=30", f"--output={self.root.parent / 'logs' / '%x-%j.out'}",
                    *options, REPO / "scripts" / "slurm" / script, *args],
                   capture_output=True, text=True, env={**self.env, **env}, cwd=REPO)
        return done.stdout.strip().split(";")[0]

    def job_field(self, job: str, field: str) -> str:
        line = subprocess.run(["scontrol", "show", "job", "--oneliner", job], capture_output=True, text=True,
                              env=self.env).stdout
        return dict(f.split("=", 1) for f in line.split() if "=" in f).get(field, "?")

    def signal_after_update(self, job: str, log_file: Path, update: int, timeout: float) -> None:
        """SIGUSR1 to the job's tasks once its log has a record of update ``update``; once the job has
        requeued itself, it may start again at once (SLURM delays a requeued job's start otherwise)."""
        deadline = time.monotonic() + timeout
        while logged_updates(log_file) < update:
            if time.monotonic() > deadline or self.job_field(job, "JobState") in JOB_END_STATES:
                raise RuntimeError(f"job {job} did not log update {update} ({log_file})")
            time.sleep(0.1)
        run(["scancel", "--signal=USR1", job], env=self.env)
        step(f"job {job} logged update {update}: sent SIGUSR1 to its tasks")
        while self.job_field(job, "Restarts") in ("0", "?"):
            if time.monotonic() > deadline or self.job_field(job, "JobState") in JOB_END_STATES:
                raise RuntimeError(f"job {job} was not requeued after SIGUSR1")
            time.sleep(1)
        step(f"job {job} requeued itself")
        while (state := self.job_field(job, "JobState")) not in ("PENDING", "RUNNING", *JOB_END_STATES):
            if time.monotonic() > deadline:
                raise RuntimeError(f"requeued job {job} still {state}")
            time.sleep(0.5)
        if state == "PENDING":  # back in the queue, eligible only in a minute or two
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=self.env)

    def wait(self, job_ids: list[str], timeout: float) -> dict[str, str]:
        """Each job's final state (JobState as scontrol reports it)."""
        deadline = time.monotonic() + timeout
        states = {}
        while time.monotonic() < deadline:
            for job in job_ids:
                states[job] = self.job_field(job, "JobState")
            if all(state in JOB_END_STATES for state in states.values()):
                return states
            time.sleep(2)
        raise RuntimeError(f"jobs still not finished after {timeout:.0f} s: {states}")

    def sacct(self) -> str:
        return run(["sacct", "--completion", "--format=JobID,JobName%16,State,ExitCode,Elapsed,NNodes,NCPUS,"
                    "NodeList"], capture_output=True, text=True, env=self.env).stdout


SLURM_CONF = """\
ClusterName=cluster-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.log
MinJobAge=3600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=cluster-test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def without_python_env(environ) -> dict:
    """The environment without this checkout's Python settings (an active venv, PYTHONPATH)."""
    return {k: v for k, v in environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")}


def pack_env(work: Path, shared: Path) -> Path:
    archive = work / "env.tar.gz"
    env = without_python_env(os.environ)
    run(["bash", REPO / "scripts" / "pack_env.sh", archive],
        env={**env, "VENV": str(Path(sys.prefix)), "COMPRESS_LEVEL": "1", "ALLOW_CPU_TORCH": "1"})
    env_dir = shared / "env"
    env_dir.mkdir(parents=True)
    run(["tar", "-xzf", archive, "-C", env_dir])
    archive.unlink()
    return env_dir


def prepare_data(python: Path, shared_dir: Path, shared: Path, env: dict) -> tuple[Path, Path, Path]:
    """(wiki data-bin, SQuAD data-bin, a tiny masked-LM checkpoint), made with the unpacked env."""
    scripts = REPO / "scripts"
    raw, wiki = shared / "data" / "wiki-raw", shared / "data-bin" / "wiki"
    run([python, scripts / "split_data.py", "--inputs", shared_dir / "data" / "wiki" / "wiki-paragraphs.txt",
         "--outdir", raw, "--valid-docs", "2", "--test-docs", "1", "--seed", "1", "--quiet"], env=env)
    run([python, scripts / "prepare_corpus.py", "--raw-dir", raw, "--gpt2-bpe", shared_dir / "gpt2_bpe",
         "--destdir", wiki, "--workers", str(CPUS), "--quiet"], env=env)
    squad = json.loads((shared_dir / "data" / "squad2" / "squad2-dev-part.json").read_text())
    files = {}
    for split, articles in (("train", SQUAD_TRAIN_ARTICLES), ("valid", SQUAD_VALID_ARTICLES)):
        files[split] = shared / "data" / f"squad-{split}.json"
        files[split].write_text(json.dumps({**squad, "data": squad["data"][articles]}))
    squad_bin = shared / "data-bin" / "squad2"
    run([python, scripts / "prepare_squad2.py", "--train", files["train"], "--valid", files["valid"],
         "--gpt2-bpe", shared_dir / "gpt2_bpe", "--destdir", squad_bin, *TINY.window_arguments()], env=env,
        stdout=subprocess.DEVNULL)
    seed = shared / "runs" / "seed"
    run(["bash", scripts / "pretrain.sh", "--config", "tiny", "--data", wiki, "--save-dir", seed,
         "optimization.max_update=10"], env=env, stdout=subprocess.DEVNULL)
    return wiki, squad_bin, seed / "checkpoint_last.pt"


def logged_updates(log_file: Path) -> int:
    """The last update with a record in a fairseq JSON log (0 before the first)."""
    try:
        lines = log_file.read_text().splitlines()
    except OSError:
        return 0
    updates = [json.loads(line).get("num_updates") for line in lines if line.startswith('{"')]
    return max((int(u) for u in updates if u is not None), default=0)


def same_model(python: Path, a: Path, b: Path, env: dict) -> bool:
    """Whether two checkpoints hold the same tensors, bit for bit."""
    code = ("import sys, torch; from fairseq_ext.checkpoints import load_checkpoint; "
            "a, b = (load_checkpoint(p)['model'] for p in sys.argv[1:]); "
            "print(int(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)))")
    return run([python, "-c", code, a, b], capture_output=True, text=True, env=env).stdout.strip() == "1"


def num_updates(python: Path, checkpoint: Path, env: dict) -> int:
    code = ("import sys; from fairseq_ext.checkpoints import checkpoint_info, load_checkpoint; "
            "print(checkpoint_info(load_checkpoint(sys.argv[1])).num_updates)")
    return int(run([python, "-c", code, checkpoint], capture_output=True, text=True, env=env).stdout)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path,
                        default=REPO / "runs" / f"cluster-test-{dt.datetime.now():%Y%m%d-%H%M%S}",
                        help="where the cluster's state, the shared filesystem and the logs go (default: "
                        "runs/cluster-test-TIMESTAMP)")
    parser.add_argument("--shared-dir", type=Path, default=REPO.parent / "shared",
                        help="the project's shared data (gpt2_bpe, wiki paragraphs, SQuAD part)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the jobs")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = args.work_dir.resolve()
    shared = work / "shared"  # stands in for the cluster's shared filesystem
    (work / "logs").mkdir(parents=True)
    ensure_slurm()
    cluster = Cluster(work / "slurm")
    try:
        cluster.start()
        step("packing the environment (scripts/pack_env.sh) and unpacking it into the shared filesystem")
        env_dir = pack_env(work, shared)
        python = env_dir / "bin" / "python"
        # the jobs and the preparation use the unpacked env only: nothing of this checkout's .venv
        job_env = without_python_env(os.environ)
        job_env.update(PATH=f"{env_dir / 'bin'}:{job_env['PATH']}", VIRTUAL_ENV=str(env_dir),
                       OMP_NUM_THREADS="1")
        step(f"preparing data and a tiny masked-LM checkpoint with {python}")
        wiki, squad_bin, seed = prepare_data(python, args.shared_dir.resolve(), shared, job_env)

        sbatch_env = {**job_env, "ENV_DIR": str(env_dir)}
        pretrain_dir, squad_dir = shared / "runs" / "pretrain", shared / "runs" / "squad2"
        pretrain = cluster.submit(
            "pretrain.sbatch", [wiki, pretrain_dir, seed, f"optimization.max_update={PRETRAIN_UPDATES}"],
            {**sbatch_env, "CONFIG": "tiny", "GLOBAL_BATCH": "16"})
        squad = cluster.submit(
            "finetune_squad2.sbatch", [squad_bin, squad_dir, pretrain_dir / "checkpoint_last.pt",
                                       f"optimization.max_epoch={SQUAD_EPOCHS}"],
            {**sbatch_env, "CONFIG": "squad2_tiny", "GLOBAL_BATCH": "32"}, f"--dependency=afterok:{pretrain}")
        requeued_dir = shared / "runs" / "pretrain-requeued"
        requeued = cluster.submit(
            "pretrain.sbatch", [wiki, requeued_dir, seed, f"optimization.max_update={PRETRAIN_UPDATES}"],
            {**sbatch_env, "CONFIG": "tiny", "GLOBAL_BATCH": "16"})
        step(f"submitted job {pretrain} (pretrain.sbatch), job {squad} (finetune_squad2.sbatch, after "
             f"{pretrain}) and job {requeued} (pretrain.sbatch, to be signalled); waiting")
        cluster.signal_after_update(requeued, requeued_dir / "train_log.json", SIGNAL_AFTER_UPDATE,
                                    args.timeout)
        states = cluster.wait([pretrain, squad, requeued], args.timeout)
        print(cluster.sacct(), flush=True)
        failures = [f"job {job} ended {state}" for job, state in states.items() if state != "COMPLETED"]
        for log in sorted((work / "logs").glob("*.out")):
            lines = log.read_text(errors="replace").splitlines()
            # the job script's and the launcher's own lines, then how training ended
            ours = [line for line in lines if line.startswith(("pretrain.sbatch:", "finetune_squad2.sbatch:",
                                                               "launch_train:"))]
            print(f"--- {log}", *ours, "...", *lines[-8:], sep="\n", flush=True)
            if not any("2 processes on CPU (srun)" in line for line in ours):
                failures.append(f"{log.name}: not 2 data-parallel processes started by srun")
            if log.name.endswith(f"-{requeued}.out") and not any(
                    "stopped by SIGUSR1 after update" in line for line in ours):
                failures.append(f"{log.name}: job {requeued} did not stop on SIGUSR1")
        expected = (("pretraining", pretrain_dir, PRETRAIN_UPDATES), ("SQuAD", squad_dir, None),
                    ("requeued pretraining", requeued_dir, PRETRAIN_UPDATES))
        for name, save_dir, wanted in expected:
            checkpoint = save_dir / "checkpoint_last.pt"
            if not checkpoint.is_file():
                failures.append(f"{name}: no {checkpoint}")
            elif wanted is not None and num_updates(python, checkpoint, job_env) != wanted:
                failures.append(f"{name}: {checkpoint} is not at update {wanted}")
        if not (squad_dir / "checkpoint_best.pt").is_file():
            failures.append(f"SQuAD: no {squad_dir / 'checkpoint_best.pt'}")
        if cluster.job_field(requeued, "Restarts") in ("0", "?"):
            failures.append(f"job {requeued} was not requeued")
        last = [d / "checkpoint_last.pt" for d in (pretrain_dir, requeued_dir)]
        if all(p.is_file() for p in last) and not same_model(python, *last, job_env):
            failures.append(f"{last[1]} (requeued mid-run) differs from {last[0]} (undisturbed)")
    finally:
        cluster.stop()
    elapsed = time.monotonic() - started
    if failures:
        print(f"cluster-test: FAILED after {elapsed:.0f} s: {'; '.join(failures)}", file=sys.stderr)
        return 1
    step(f"passed in {elapsed:.0f} s: the SLURM jobs completed and wrote their checkpoints, the requeued one "
         f"the same as the undisturbed one ({work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
