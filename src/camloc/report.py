"""Evaluation reports: the metrics as a Markdown table, ``metrics.json``, ``metrics.csv`` and the
BoxAcc-vs-threshold and example figures. Torch-free, so ``camloc evaluate-maps`` starts without it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from camloc.metrics.maxboxacc import resize_box


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

    from camloc.io import atomic_write_json, atomic_write_text

    os.makedirs(out, exist_ok=True)
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
        written.append(_curve_figure(os.path.join(out, "boxacc_vs_threshold.png"), thresholds, curves))
    if figures and examples:
        written.append(_examples_figure(os.path.join(out, "examples.png"), examples))
    return written


def _save(fig: Any, path: str) -> str:
    from camloc.viz import save_figure

    save_figure(fig, path, tight=True)
    return path


def _curve_figure(path: str, thresholds: Sequence[float], curves: dict[str, list[float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, acc in curves.items():
        ax.plot(thresholds, acc, label=name)
    ax.set_xlabel("CAM threshold (fraction of the map max)")
    ax.set_ylabel("BoxAcc (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _examples_figure(path: str, examples: Sequence[dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(examples)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.3), squeeze=False)
    for ax, ex in zip(axes[0], examples):
        ax.imshow(ex["image"])
        ax.imshow(ex["map"], cmap="jet", alpha=0.45, vmin=0, vmax=1)

        def rect(b: Sequence[int], color: str, style: str = "-") -> None:
            ax.add_patch(Rectangle((b[0] - 0.5, b[1] - 0.5), b[2] - b[0] + 1, b[3] - b[1] + 1,
                                   fill=False, edgecolor=color, linewidth=2, linestyle=style))

        for g in ex["gt"]:
            rect(g, "lime")
        for b in ex.get("protocol_boxes", []):
            rect(b, "red")
        if ex.get("paper_box") is not None:
            W, H = ex["size"]
            rect(resize_box(ex["paper_box"], (W, H)), "white", "--")
        ax.set_title(os.path.basename(ex["image_id"])[:28], fontsize=8)
        ax.axis("off")
    fig.suptitle("green: ground truth; red: MaxBoxAcc box at its best threshold; white dashed: 20 % rule", fontsize=8)
    return _save(fig, path)
