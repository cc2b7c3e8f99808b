"""One chunked parallel map and merge: items in chunks, each chunk scored in a worker process
(or here, for ``workers <= 1``), the results merged in order.

Scoring is plain CPU work per image (thresholds, contours) whose results are sums, so spreading
it over processes does not change them. The workers are spawned (fresh interpreters), not
forked: forking a process whose torch or OpenCV thread pools are running can deadlock the child.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any


class Pool:
    """``workers`` spawned processes, started at once (a few seconds, not in the middle of a
    run), or none for ``workers <= 1``; a context manager, reusable across :meth:`map_merge` calls."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool = None
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_init)
            list(self._pool.map(_noop, range(self.workers)))

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def map_merge(self, fn: Callable[[list], Any], items: Sequence, merge: Callable[[Any], None], chunk: int = 32,
                  progress: Any = None) -> None:
        """``merge(fn(chunk))`` for the chunks of ``chunk`` items, in order; ``progress`` (a tqdm
        bar) advances by each chunk's length. ``fn`` must be picklable (a module-level function
        or a ``functools.partial`` of one). The first error stops the run."""
        chunks = [list(items[i : i + chunk]) for i in range(0, len(items), max(1, chunk))]
        if self._pool is None:
            for part in chunks:
                merge(fn(part))
                if progress is not None:
                    progress.update(len(part))
            return
        futures = [self._pool.submit(fn, part) for part in chunks]
        try:
            for part, fut in zip(chunks, futures):
                merge(fut.result())
                if progress is not None:
                    progress.update(len(part))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _noop(i: int) -> int:
    return i


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)
    if sys.platform.startswith("linux"):  # die with the parent, however it ends
        try:
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
