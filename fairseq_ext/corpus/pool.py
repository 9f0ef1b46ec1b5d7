"""Worker processes that encode blocks, results in input order, bounded read-ahead."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from typing import Callable, Iterable, Iterator

from fairseq_ext.corpus.encoders import BlockEncoder, filter_rows

# Worker processes: each builds its encoder once (from picklable arguments) and keeps its caches.
_worker_encoder = None


def init_worker(make_encoder: Callable[..., BlockEncoder], *args) -> None:
    global _worker_encoder
    _worker_encoder = make_encoder(*args)


def _init_pool_process(initializer: Callable, *args) -> None:
    # One process per core already: no Rust thread pool inside a worker (and no fork warnings).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    initializer(*args)


def encode_block(task: tuple[list[list[str]], bool, int]):
    """(columns, keep_empty, nbytes) -> (encoded columns, rows kept, rows dropped, nbytes)."""
    columns, keep_empty, nbytes = task
    kept, dropped = filter_rows(columns, keep_empty, _worker_encoder.strips_lines)
    return [_worker_encoder.encode_lines(column) for column in kept], len(kept[0]), dropped, nbytes


class WorkerPool:
    """``map`` on worker processes with results in input order and at most 2 blocks per worker in flight
    (``Pool.imap`` would read the whole input ahead). One worker runs in this process."""

    def __init__(self, workers: int, initializer: Callable, initargs: tuple):
        self.workers = max(1, workers)
        if self.workers == 1:
            initializer(*initargs)
            self.pool = None
        else:
            self.pool = multiprocessing.Pool(self.workers, initializer=_init_pool_process,
                                             initargs=(initializer, *initargs))

    def map(self, func: Callable, tasks: Iterable) -> Iterator:
        if self.pool is None:
            yield from map(func, tasks)
            return
        pending: deque = deque()
        for task in tasks:
            pending.append(self.pool.apply_async(func, (task,)))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
