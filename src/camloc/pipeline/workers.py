"""Where decoding runs: threads (the default) or isolated processes.

Threads are cheap and enough on their own: Pillow's decoders and OpenCV's resizes release the
GIL. A decoder bug that crashes its process (a segmentation fault in a C library on a hostile
file) would take the whole run with it, though, so :class:`ProcessDecoders` runs file decoding in
worker processes instead: when a worker dies, every image whose decoding was lost is decoded
again alone in a fresh process, and the one that kills that process too becomes an error record
("the decoder crashed"); the run goes on and never hangs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

DecodeFn = Callable[..., Any]


class ThreadDecoders:
    """Decode in a pool of threads (``workers == 0``: inline, in the caller's thread)."""

    def __init__(self, fn: DecodeFn, workers: int) -> None:
        self.fn = fn
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="camloc-decode") if workers else None

    def submit(self, *args: Any) -> Future | Any:
        return self.pool.submit(self.fn, *args) if self.pool else self.fn(*args)

    def result(self, handle: Future | Any, *args: Any) -> Any:
        return handle.result() if isinstance(handle, Future) else handle

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class ProcessDecoders:
    """Decode in ``workers`` spawned processes; a crashed worker costs one image (see module doc).

    ``fn`` must be a module-level function (it is pickled by reference), called as
    ``fn(*args)``; its result must be picklable.
    """

    def __init__(self, fn: DecodeFn, workers: int, crashed: Callable[..., Any]) -> None:
        self.fn = fn
        self.workers = max(1, workers)
        self.crashed = crashed
        self.context = multiprocessing.get_context("spawn")
        self.pool = self._new_pool(self.workers)

    def _new_pool(self, n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(n, mp_context=self.context)

    def submit(self, *args: Any) -> Future:
        try:
            return self.pool.submit(self.fn, *args)
        except BrokenProcessPool:
            self._restart()
            return self.pool.submit(self.fn, *args)

    def result(self, handle: Future, *args: Any) -> Any:
        try:
            return handle.result()
        except BrokenProcessPool:
            self._restart()
            return self._alone(*args)

    def _alone(self, *args: Any) -> Any:
        """Decode once more in a process of its own: a second crash is this input's fault."""
        with self._new_pool(1) as solo:
            try:
                return solo.submit(self.fn, *args).result()
            except BrokenProcessPool:
                return self.crashed(*args)

    def _restart(self) -> None:
        if getattr(self.pool, "_broken", False):
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool(self.workers)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """Decode workers: the cores, at most 4 (beyond that the forward pass is the bottleneck)."""
    return max(1, min(4, os.cpu_count() or 1))
