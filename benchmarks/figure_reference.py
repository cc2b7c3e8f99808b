"""The top-k panel as camloc first drew it, with matplotlib: the baseline of ``bench_figures``.

Kept only to measure the composed panel of :func:`camloc.viz.topk_figure` against it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np


def matplotlib_topk_figure(image: np.ndarray, maps01: Sequence[np.ndarray], boxes: Sequence[Sequence[int] | None],
                           titles: Sequence[str], title: str = "") -> bytes:
    """One axes per panel (the photo, then each class's overlay and box), tight layout, PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from camloc.viz import draw_box, heat_overlay

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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
