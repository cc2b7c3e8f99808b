"""Every benchmark runs in ``--quick`` mode (its code paths on a few inputs, in seconds), so a
moved or renamed name breaks this test rather than the next ``make bench``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.__main__ import names  # noqa: E402
from benchmarks.timing import QUICK_ENV, interleaved, pick, quick  # noqa: E402


def test_quick_mode_shrinks_the_work(monkeypatch):
    monkeypatch.delenv(QUICK_ENV, raising=False)
    assert not quick() and pick(10, 1) == 10
    calls = []
    interleaved({"a": lambda: calls.append(1)}, repeats=4, warmup=2)
    assert len(calls) == 6
    monkeypatch.setenv(QUICK_ENV, "1")
    assert quick() and pick(10, 1) == 1
    calls.clear()
    interleaved({"a": lambda: calls.append(1)}, repeats=4, warmup=2)
    assert len(calls) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", names())
def test_benchmark_runs_quick(name, monkeypatch):
    import torch

    monkeypatch.setenv(QUICK_ENV, "1")
    threads = torch.get_num_threads()  # a benchmark may pin one thread; later tests compare exact numbers
    doc = ROOT / "BENCHMARKS.md"
    before = doc.read_bytes()
    docs_before = {p: p.stat().st_mtime_ns for p in (ROOT / "docs").glob("*.png")}
    try:
        section = importlib.import_module(f"benchmarks.bench_{name}").main()
    finally:
        torch.set_num_threads(threads)
    assert isinstance(section, str) and section.startswith("## "), section[:200]
    assert "|" in section or "skipped" in section  # a table, or a one-line reason why not
    assert doc.read_bytes() == before  # a quick run documents nothing
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "docs").glob("*.png")} == docs_before
