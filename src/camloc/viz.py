"""Figures: map overlays with boxes, and the paper's top-k panels."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import cv2
import numpy as np

from camloc.io import atomic_write_bytes

BOX_COLOR = (0, 255, 0)  # RGB
GT_COLOR = (255, 0, 0)


def heat_overlay(image: np.ndarray, map01: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a ``[0, 1]`` map (any size; resized to the image) as a jet heat map on an RGB image."""
    h, w = image.shape[:2]
    if map01.shape != (h, w):
        map01 = cv2.resize(map01.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.clip(map01 * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image.astype(np.uint8), 1 - alpha, heat, alpha, 0)


def draw_box(image: np.ndarray, box: Sequence[int] | None, color=BOX_COLOR, label: str | None = None) -> np.ndarray:
    """Draw an inclusive-corner box (and a label above it) on a copy of an RGB image."""
    out = np.ascontiguousarray(image.copy())
    if box is None:
        return out
    h, w = out.shape[:2]
    t = max(1, round(min(h, w) / 150))
    x0, y0, x1, y1 = (int(v) for v in box)
    cv2.rectangle(out, (x0, y0), (x1, y1), color, t)
    if label:
        scale = max(0.35, min(h, w) / 600)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, t // 2))
        ty = y0 - 4 if y0 - th - 6 >= 0 else min(h - 1, y0 + th + 6)
        cv2.rectangle(out, (x0, ty - th - 3), (min(w - 1, x0 + tw + 4), ty + base - 1), color, -1)
        cv2.putText(out, label, (x0 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, t // 2), cv2.LINE_AA)
    return out


def overlay_figure(image: np.ndarray, map01: np.ndarray, box: Sequence[int] | None, label: str,
                   gt_boxes: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """The top-1 figure: heat map on the photo, predicted box with its label, ground truth in red."""
    out = draw_box(heat_overlay(image, map01), box, BOX_COLOR, label)
    for gt in gt_boxes:
        out = draw_box(out, gt, GT_COLOR)
    return out


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB array as PNG, atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{os.fspath(path)}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())


def topk_figure(image: np.ndarray, maps01: Sequence[np.ndarray], boxes: Sequence[Sequence[int] | None],
                titles: Sequence[str], path: str | os.PathLike, title: str = "") -> None:
    """The paper's panel figure: the photo, then one panel per predicted class (map and box)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(maps01) + 1
    h, w = image.shape[:2]
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.6 * h / w + 0.5), squeeze=False)
    axes = axes[0]
    axes[0].imshow(image)
    axes[0].set_title("input", fontsize=9)
    for ax, m, b, t in zip(axes[1:], maps01, boxes, titles):
        ax.imshow(draw_box(heat_overlay(image, m), b))
        ax.set_title(t, fontsize=8)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


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
