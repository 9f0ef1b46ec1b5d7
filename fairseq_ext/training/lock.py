"""One training per save dir: an exclusive ``flock`` on ``SAVE_DIR/.train.lock``, held by the launcher for
its whole life (and by the training processes it starts).

Two trainings on one save dir (a manual resubmission while the requeued job runs) would overwrite each
other's checkpoints and log every update twice; the second is refused in one line naming the holder. The
kernel drops the lock when its holder ends, however it ends (SIGKILL, a node's job killed): it never goes
stale, and the file left behind means nothing. On a filesystem without flock (Lustre mounted without
``-o flock``) the run goes on, and says that a second training would not be detected.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import socket
from pathlib import Path

from fairseq_ext.errors import UserInputError

LOCK_FILE = ".train.lock"
_held: dict[Path, int] = {}  # lock file -> its open descriptor, for the life of this process


def hold_save_dir(save_dir: str | os.PathLike) -> str:
    """Takes the save dir's lock for the rest of this process (again in the same process: a no-op).
    Returns a line to report, empty when the lock was taken; raises UserInputError when another process
    holds it."""
    path = (Path(save_dir) / LOCK_FILE).resolve()
    if path in _held:
        return ""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "a process that has not said who"
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UserInputError(f"{Path(save_dir)} is in use by another training ({holder}): wait for it "
                                 "to end, stop it, or choose another --save-dir") from None
        return (f"cannot lock {path} ({err.strerror}: no flock on this filesystem): a second training "
                "on this save dir would not be detected")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{describe_holder()}\n".encode(), 0)
    _held[path] = fd
    return ""


def held_descriptors() -> tuple[int, ...]:
    """The descriptors of the locks this process holds (to pass to the processes it starts)."""
    return tuple(_held.values())


def release_all() -> None:
    """Releases the locks of this process (its end does the same)."""
    while _held:
        os.close(_held.popitem()[1])


def describe_holder() -> str:
    """'pid 123 on node7, SLURM job 42, since 2026-12-07 07:00:00 UTC'."""
    job = os.environ.get("SLURM_JOB_ID")
    since = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"pid {os.getpid()} on {socket.gethostname()}" + (f", SLURM job {job}" if job else "") + \
        f", since {since}"
