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
from fairseq_ext.outputs import check_writable_directory

LOCK_FILE = ".train.lock"
_held: dict[Path, int] = {}  # lock file -> its open descriptor, for the life of this process
_unnamed: set[Path] = set()  # locks taken before the run's checks, their holder not yet written


def hold_save_dir(save_dir: str | os.PathLike, create: bool = True) -> str:
    """Takes the save dir's lock for the rest of this process (again in the same process: a no-op).
    Returns a line to report, empty when the lock was taken; raises UserInputError when another process
    holds it. ``create=False`` (before the run's checks, which may still refuse it and must leave nothing
    behind): only a lock file that an earlier or running training made is taken."""
    path = (Path(save_dir) / LOCK_FILE).resolve()
    if path in _held:
        if create and path in _unnamed:  # the run passed its checks: it now says who holds the lock
            _name_holder(_held[path])
            _unnamed.discard(path)
        return ""
    if not (create or path.is_file()):
        return ""
    check_writable_directory(save_dir, f"checkpoints in {save_dir}")
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
    _held[path] = fd
    if create:
        _name_holder(fd)
    else:  # a run its checks may still refuse leaves the file as it was
        _unnamed.add(path)
    return ""


def _name_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{describe_holder()}\n".encode(), 0)


def held_descriptors() -> tuple[int, ...]:
    """The descriptors of the locks this process holds (to pass to the processes it starts)."""
    return tuple(_held.values())


def release_all() -> None:
    """Releases the locks of this process (its end does the same)."""
    while _held:
        os.close(_held.popitem()[1])
    _unnamed.clear()


def describe_holder() -> str:
    """'pid 123 on node7, SLURM job 42, since 2026-12-07 07:00:00 UTC'."""
    job = os.environ.get("SLURM_JOB_ID")
    since = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"pid {os.getpid()} on {socket.gethostname()}" + (f", SLURM job {job}" if job else "") + \
        f", since {since}"
