"""Worker processes that encode blocks, results in input order, bounded read-ahead."""

from __future__ import annotations

import os
import signal
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator, Optional

from fairseq_ext.cli import UserInputError
from fairseq_ext.corpus.encoders import BlockEncoder, filter_rows

# Worker processes: each builds its encoder once (from picklable arguments) and keeps its caches.
_worker_encoder = None
# A worker whose start-up failed keeps the error and raises it from its first task: an initializer that
# raises would make a multiprocessing pool start a new worker, forever.
_worker_error: Optional[BaseException] = None


def init_worker(make_encoder: Callable[..., BlockEncoder], *args) -> None:
    global _worker_encoder
    _worker_encoder = make_encoder(*args)


def _init_pool_process(initializer: Callable, *args) -> None:
    global _worker_error
    # Ctrl-C reaches the whole process group: the parent alone stops the run (and its pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # One process per core already: no Rust thread pool inside a worker (and no fork warnings).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        initializer(*args)
    except Exception as err:
        _worker_error = err


def _run_task(func: Callable, task):
    if _worker_error is not None:
        raise _worker_error
    return func(task)


def encode_block(task: tuple[list[list[str]], bool, int]):
    """(columns, keep_empty, nbytes) -> (encoded columns, rows kept, rows dropped, nbytes)."""
    columns, keep_empty, nbytes = task
    kept, dropped = filter_rows(columns, keep_empty, _worker_encoder.strips_lines)
    return [_worker_encoder.encode_lines(column) for column in kept], len(kept[0]), dropped, nbytes


class WorkerPool:
    """``map`` on worker processes with results in input order and at most 2 blocks per worker in flight
    (``Pool.imap`` would read the whole input ahead). One worker runs in this process. The first error of
    a worker, at start-up or in a task, ends the map with that error; a worker that dies ends it too."""

    def __init__(self, workers: int, initializer: Callable, initargs: tuple):
        self.workers = max(1, workers)
        if self.workers == 1:
            initializer(*initargs)
            self.pool = None
        else:
            self.pool = ProcessPoolExecutor(self.workers, initializer=_init_pool_process,
                                            initargs=(initializer, *initargs))
            self.pool.submit(int)  # starts the workers now: their set-up overlaps the caller's

    def map(self, func: Callable, tasks: Iterable) -> Iterator:
        if self.pool is None:
            yield from map(func, tasks)
            return
        pending: deque = deque()
        try:
            for task in tasks:
                pending.append(self.pool.submit(_run_task, func, task))
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
