"""What every fuzz test shares: the case budget, one outcome per case (result, clean error,
crash, hang) tallied for the summary line, and a tiny 3-channel GAP net.

A case is one call of camloc on one generated input. It must end in a result or a clean error:
a camloc error (or an ``OSError``) whose message is one line; anything else is a crash, and a
case still running after :data:`CASE_SECONDS` is a hang (``SIGALRM`` interrupts it). A crash or
a hang fails the test, so hypothesis shrinks it to the smallest input that shows it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from hypothesis import HealthCheck, settings
from torch import nn

from camloc.errors import CamlocError, is_user_error
from camloc.models.heads import Head

#: examples per fuzz test: small by default (the slice ``make test`` runs), ``make fuzz`` sets more
CASES = int(os.environ.get("FUZZ_CASES", "6"))
#: ``FUZZ_RANDOM=1``: new examples on every run (default: the same ones, so a run is reproducible)
RANDOM = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")
CASE_SECONDS = float(os.environ.get("FUZZ_CASE_SECONDS", "30"))

TALLY: Counter[str] = Counter()
BY_KIND: dict[str, Counter[str]] = {}


def fuzz_settings(scale: float = 1.0) -> settings:
    """Hypothesis settings for ``scale * CASES`` examples, no deadline (a case's time is the
    hang check's business), derandomized unless ``FUZZ_RANDOM`` so a run is reproducible."""
    return settings(max_examples=max(1, int(CASES * scale)), deadline=None, derandomize=not RANDOM, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


class Hang(Exception):
    """A case that ran past :data:`CASE_SECONDS`."""


@contextmanager
def _alarm(seconds: float):
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    # pytest-timeout may have its own SIGALRM timer running for the whole test: put it back after
    previous = signal.signal(signal.SIGALRM, fire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, outer - (time.monotonic() - start)))


def one_line(text: str) -> bool:
    return "\n" not in text and "\r" not in text and text.strip() != ""


def clean_error(err: BaseException) -> bool:
    """A camloc error or an OSError (or a ValueError camloc raised on purpose), in one line."""
    return isinstance(err, (CamlocError, OSError, ValueError)) and is_user_error(err) and one_line(str(err))


def run_case(kind: str, call: Callable[[], Any], check: Callable[[Any], str | None] | None = None,
             failed: Callable[[Any], bool] | None = None, naming: str | None = None) -> Any:
    """Run one case and tally its outcome under ``kind``; re-raise (as ``AssertionError``) a
    crash or a hang so that the test fails. ``check(result)`` returns why a result is wrong
    (a record with NaN, a multi-line error, ...) or ``None``; ``failed(result)`` says that a
    returned result is a clean error (an error record); a raised error must contain ``naming``
    (the file it is about) to be clean."""
    counts = BY_KIND.setdefault(kind, Counter())
    outcome, problem, result = "result", None, None
    try:
        with _alarm(CASE_SECONDS), warnings.catch_warnings(record=True) as leaked:
            warnings.simplefilter("always")
            result = call()
        problem = check(result) if check is not None else None
        if problem is None and leaked:  # a warning is stderr noise the user cannot act on
            w = leaked[0]
            problem = f"leaked {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        if problem is not None:
            outcome = "crash"
        elif failed is not None and failed(result):
            outcome = "clean error"
    except Hang as err:
        outcome, problem = "hang", str(err)
    except Exception as err:  # the point of the exercise: classify whatever comes out
        if clean_error(err) and (naming is None or naming in str(err)):
            outcome = "clean error"
        else:
            outcome, problem = "crash", f"{type(err).__name__}: {err}"
            problem = problem if len(problem) < 2000 else problem[:2000] + " ..."
            problem = _with_traceback(problem, err)
    TALLY["tried"] += 1
    TALLY[outcome] += 1
    counts["tried"] += 1
    counts[outcome] += 1
    if outcome in ("crash", "hang"):
        raise AssertionError(f"fuzz {kind}: {outcome}: {problem}")
    return result


def _with_traceback(problem: str, err: BaseException) -> str:
    import traceback

    return problem + "\n" + "".join(traceback.format_exception(err)[-6:])


def summary_lines() -> list[str]:
    if not TALLY["tried"]:
        return []
    lines = [f"fuzz: {TALLY['tried']} cases tried: {TALLY['result']} results, {TALLY['clean error']} clean errors, "
             f"{TALLY['crash']} crashes, {TALLY['hang']} hangs"]
    for kind, c in sorted(BY_KIND.items()):
        lines.append(f"fuzz:   {kind}: {c['tried']} tried, {c['result']} results, {c['clean error']} clean errors, "
                     f"{c['crash']} crashes, {c['hang']} hangs")
    return lines


# --------------------------------------------------------------------------- a tiny net
class Tiny(nn.Module):
    """3-channel input -> 3x3 conv (4 units) -> ReLU -> GAP -> linear (3 classes)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu(self.conv(x))), 1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


def tiny_net():
    import camloc
    from camloc.models.net import Preprocessing

    return camloc.load_model(Tiny().eval(), class_names=["ant", "bee", "cow"], preprocessing=Preprocessing(shape=(32, 32)))


def record_problem(rec: dict, name: str | None = None) -> str | None:
    """Why a localize record is wrong, or ``None``: strict JSON, an error in one line naming the
    input, or predictions with finite numbers and boxes inside the image."""
    import json

    try:
        json.dumps(rec, allow_nan=False)
    except ValueError as err:
        return f"record is not strict JSON ({err}): {rec!r}"[:500]
    if rec.get("error") is not None:
        if not one_line(rec["error"]):
            return f"multi-line error: {rec['error']!r}"
        if name is not None and not rec["error"].startswith(name):
            return f"error does not start with the input's name {name!r}: {rec['error']!r}"
        return None
    w, h = rec["width"], rec["height"]
    for p in rec["predictions"]:
        box = p["box"]
        if box is not None and not (0 <= box[0] <= box[2] < w and 0 <= box[1] <= box[3] < h):
            return f"box {box} outside the {w}x{h} image"
    return None
