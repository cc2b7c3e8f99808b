"""Charts drawn with matplotlib (imported only when a chart is drawn): the evaluation's BoxAcc
against the threshold, the ablation's accuracy against time, the reproduction's threshold curves;
and :func:`save_figure`, which writes any matplotlib figure."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from camloc.io import atomic_write_bytes

# The reproduction's curves: colour and line style per method key.
CURVE_STYLE = {"cam_gap": ("tab:blue", "--"), "cam_gap_relu": ("tab:blue", "-"), "cam_gmp": ("tab:orange", "--"),
               "cam_gmp_relu": ("tab:orange", "-"), "backprop_gap": ("tab:green", "-"), "backprop_fc": ("tab:green", ":"),
               "gradcam_fc": ("tab:purple", ":")}
# Grad-CAM on the GAP net at its CAM layer is ReLU(CAM) / hw: its curve is the positive-part CAM's.
CURVE_SKIP = ("gradcam_gap",)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only ``Agg`` backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, *paths: str | os.PathLike, dpi: int = 100, tight: bool = False) -> None:
    """Render a matplotlib figure to PNG once, write it atomically to every path, and close it
    (``tight``: crop to the drawn area)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    for path in paths:
        atomic_write_bytes(path, buf.getvalue())


def boxacc_curves(path: str, thresholds: Sequence[float], curves: dict[str, list[float]]) -> str:
    """BoxAcc (%) against the CAM threshold, one line per curve; returns ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, acc in curves.items():
        ax.plot(thresholds, acc, label=name)
    ax.set_xlabel("CAM threshold (fraction of the map max)")
    ax.set_ylabel("BoxAcc (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path, tight=True)
    return path


def ablation_plot(rows: list[dict[str, Any]], path: str) -> None:
    """The ablation's MaxBoxAcc and GT-known against time per image, one marker per reading,
    filled with flip."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    norms = list(dict.fromkeys(r["norm"] for r in rows))
    markers = "osD^v<>p*h"
    for ax, key in zip(axes, ("MaxBoxAcc", "gt_known")):
        for j, n in enumerate(norms):
            for clamp in (False, True):
                pts = [r for r in rows if r["norm"] == n and r["clamp"] == clamp]
                if not pts:
                    continue
                ax.scatter([r["ms_per_image"] for r in pts], [r[key] for r in pts], marker=markers[j % len(markers)],
                           facecolors=["C0" if r["flip"] else "none" for r in pts],
                           edgecolors="C1" if clamp else "C0", label=f"{n}{' clamped' if clamp else ''}")
        ax.set_xlabel("localize, ms per image")
        ax.set_ylabel(f"{key} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"localization switches ({rows[0]['num_images']} images; filled: flip)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def reproduction_curves(paths: list[Path], results: dict[str, Any]) -> None:
    """The reproduction's GT-known BoxAcc against the threshold, one panel per regime (mean and
    one std over seeds per method, the tuned centered box, the 20 % rule), from ``results.json``."""
    plt = pyplot()
    regimes = list(results["regimes"])
    step = results["plan"]["threshold_step"]
    fig, axes = plt.subplots(1, len(regimes), figsize=(5.2 * len(regimes), 3.9), squeeze=False)
    for ax, r in zip(axes[0], regimes):
        summ = results["regimes"][r]["summary"]["methods"]
        for key, label in results["methods"].items():
            if key in CURVE_SKIP:
                continue
            mean = np.array(summ[key]["curve_mean"])
            std = np.array(summ[key]["curve_std"])
            x = np.arange(len(mean)) * step
            color, style = CURVE_STYLE.get(key, ("k", "-"))
            ax.plot(x, mean, style, color=color, label=label, linewidth=1.5)
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        base = results["regimes"][r]["baseline"]["MaxBoxAcc"]
        ax.axhline(base, color="gray", linestyle=":", linewidth=1, label="centered box (tuned)")
        ax.axvline(0.2, color="k", linestyle="--", linewidth=0.8, alpha=0.6)
        ax.set_title(f"{r}: GT-known BoxAcc (IoU 0.5, largest contour); Grad-CAM (GAP) = CAM ReLU", fontsize=8)
        ax.set_xlabel("threshold τ on the normalized map")
        ax.set_ylabel("BoxAcc (%)")
        ax.set_ylim(0, 100)
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, *paths, dpi=110, tight=True)
