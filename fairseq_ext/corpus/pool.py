"""Worker processes that encode blocks, results in input order, bounded read-ahead."""

from __future__ import annotations

import os
import signal
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator, Sequence, Union

from fairseq_ext.corpus.encoders import filter_rows
from fairseq_ext.corpus.reading import ByteBlock
from fairseq_ext.errors import UserInputError

# A block's lines of one input: undecoded (one input: the worker decodes them) or decoded (several
# inputs: the parent aligns their lines).
Column = Union[ByteBlock, Sequence[str]]
Task = tuple[Sequence[Column], bool, int]  # (columns, keep_empty, bytes read)

_worker_encoder = None  # the encoder of this process; it keeps its caches from block to block


def _exit_when_orphaned(parent: int, interval: float = 0.2) -> None:
    """In a worker: exits as soon as the process that started it is gone. SIGKILL of the main process
    runs none of its clean-ups, and a worker waiting for its next task would wait forever. A daemon thread
    polls ``os.getppid()`` (portable; the parent's death reparents the worker). Workers started through a
    fork server (whose parent is that server) are left without it."""
    import threading
    import time

    if os.getppid() != parent:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()


def _init_worker(encoder, parent: int) -> None:
    global _worker_encoder
    _exit_when_orphaned(parent)
    # Ctrl-C reaches the whole process group: the parent alone stops the run (and its pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # One process per core already: no Rust thread pool inside a worker (and no fork warnings).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_encoder = encoder


def encode_block(task: Task):
    """(columns, keep_empty, nbytes) -> (encoded columns, rows kept, rows dropped, nbytes)."""
    columns, keep_empty, nbytes = task
    lines = [column.lines() if isinstance(column, ByteBlock) else column for column in columns]
    kept, dropped = filter_rows(lines, keep_empty, _worker_encoder.strips_lines)
    return [_worker_encoder.encode_lines(column) for column in kept], len(kept[0]), dropped, nbytes


class WorkerPool:
    """``map(encode_block)`` on worker processes with results in input order and at most 2 blocks per
    worker in flight (``Pool.imap`` would read the whole input ahead). With one worker, it runs in this
    process. The encoder is built once, by the caller (so its errors are the caller's): forked workers
    inherit it loaded (no pickling, no second load of the tokenizer files); with the spawn start method
    it is pickled to them. The first error of a task ends the map with that error; a worker that dies
    ends it too."""

    def __init__(self, workers: int, encoder):
        self.workers = max(1, workers)
        self.encoder = encoder
        self.pool = None
        if self.workers > 1:
            self.pool = ProcessPoolExecutor(self.workers, initializer=_init_worker,
                                            initargs=(encoder, os.getpid()))

    def map(self, tasks: Iterable[Task]) -> Iterator:
        if self.pool is None:
            global _worker_encoder
            _worker_encoder = self.encoder
            yield from map(encode_block, tasks)
            return
        pending: deque = deque()
        try:
            for task in tasks:
                pending.append(self.pool.submit(encode_block, task))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise UserInputError("a worker process died (out of memory?): run again with fewer --workers"
                                 ) from None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
