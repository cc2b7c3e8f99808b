"""Side-by-side timing helpers: interleaved repetitions, medians, ratios.

Both wall-clock and process CPU time are recorded: on a shared machine the CPU time of this
process is the steadier measure of the work done (it is not inflated by other processes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
QUICK_ENV = "CAMLOC_BENCH_QUICK"


def quick() -> bool:
    """Whether this is a ``--quick`` run: every code path once, on a few inputs, in seconds.

    ``python -m benchmarks --quick`` sets it (and writes nothing to BENCHMARKS.md); the test suite
    runs every benchmark so, so that a moved name breaks a test, not a release.
    """
    import os

    return os.environ.get(QUICK_ENV) == "1"


def pick(full: T, small: T) -> T:
    """``full`` in a real run, ``small`` in a ``--quick`` one."""
    return small if quick() else full


def scratch(path):
    """Where a figure goes: ``path`` in a real run, a temporary file of the same name when quick
    (a quick run never overwrites the documented figures)."""
    import os
    import tempfile

    if not quick():
        return path
    return type(path)(os.path.join(tempfile.mkdtemp(prefix="camloc-bench-quick-"), os.path.basename(str(path))))


@dataclass
class Timing:
    wall: float  # median seconds per call
    cpu: float  # median process CPU seconds per call (all threads)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 15, warmup: int = 3) -> dict[str, Timing]:
    """Median time per call of each function, calls interleaved so machine noise hits all alike
    (once each, without warm-up, in a ``--quick`` run)."""
    if quick():
        repeats, warmup = 1, 0
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {k: Timing(statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def paired(pairs: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """``(mean a, mean b, mean gain a - b, its standard error)`` of paired timings ``(a, b)``: the
    figures the halves rule reads (the standard error is NaN for one pair)."""
    d = [a - b for a, b in pairs]
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return statistics.mean(a for a, _ in pairs), statistics.mean(b for _, b in pairs), statistics.mean(d), se


def load_average() -> float:
    import os

    return os.getloadavg()[0]


def machine_line() -> str:
    import os
    import platform

    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, load average {load_average():.1f} at start")
