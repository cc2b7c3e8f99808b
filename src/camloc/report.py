"""An evaluation's report files, for ``camloc evaluate`` and ``camloc evaluate-maps`` alike: the
metrics as a Markdown table, ``metrics.json``, ``metrics.csv`` and the BoxAcc-vs-threshold and
example figures (drawn by :mod:`camloc.viz`). Torch-free, so ``camloc evaluate-maps`` starts
without it. (The metrics themselves are read out of the evaluators by
:mod:`camloc.evaluate.readout`; the reproduction writes its own, different document,
:mod:`camloc.experiments.reproduce.report`.)"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def markdown_table(metrics: dict[str, Any]) -> str:
    """The scalar metrics as a two-column Markdown table (floats to 2 decimals)."""
    rows = ["| metric | value |", "| --- | ---: |"]
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            continue
        rows.append(f"| {k} | {v:.2f} |" if isinstance(v, float) else f"| {k} | {v} |")
    return "\n".join(rows)


def write_report(out: str | os.PathLike, metrics: dict[str, Any], thresholds: Sequence[float] = (),
                 curves: dict[str, list[float]] | None = None, examples: Sequence[dict[str, Any]] = (),
                 figures: bool = True) -> list[str]:
    """Write ``metrics.json``, ``metrics.csv`` and (with ``figures``) ``boxacc_vs_threshold.png``
    and ``examples.png`` into ``out`` (atomically). Returns the files written."""
    import csv
    import io as _io

    from camloc.io import atomic_write_json, atomic_write_text, output_folder

    output_folder(out)
    written = []
    path = os.path.join(out, "metrics.json")
    atomic_write_json(path, metrics)
    written.append(path)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "value"])
    for k, v in metrics.items():
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            w.writerow([k, repr(v) if isinstance(v, float) else v])
    path = os.path.join(out, "metrics.csv")
    atomic_write_text(path, buf.getvalue())
    written.append(path)
    if figures and curves:
        from camloc.viz.plots import boxacc_curves

        written.append(boxacc_curves(os.path.join(out, "boxacc_vs_threshold.png"), thresholds, curves))
    if figures and examples:
        from camloc.viz.grids import evaluation_examples

        written.append(evaluation_examples(os.path.join(out, "examples.png"), examples))
    return written
