"""Grids of images: the evaluation's examples, a class's units (rows of best images), a class's
discovered patterns (rows of crops, one class or several stacked), the reproduction's example
maps, the text benchmark's examples, the generated experiments' example panels. Each takes
computed data (maps, boxes, crops) and writes one PNG, atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camloc.io import atomic_write_bytes
from camloc.viz.panels import GT_COLOR, title_band, draw_box, heat_overlay, save_png, topk_panel
from camloc.viz.plots import pyplot, save_figure


def evaluation_examples(path: str, examples: Sequence[dict[str, Any]]) -> str:
    """One panel per example: the map over the image, ground truth (green), the MaxBoxAcc boxes
    at the best threshold (red), the 20 % rule's box (white dashed); returns ``path``."""
    from matplotlib.patches import Rectangle

    from camloc.metrics.maxboxacc import resize_box

    plt = pyplot()
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
    save_figure(fig, path, tight=True)
    return path


def units_figure(units: Sequence[Any], path: str | os.PathLike, title: str = "", side: int = 160) -> None:
    """One row per unit (a :class:`camloc.units.Unit`: its index and weight), its best images with
    the unit's map (positive part, scaled to the unit's highest peak over the row so rows compare
    within themselves) and its box; written atomically as PNG."""
    from camloc.readings import upsample
    from camloc.pixels.decode import load_image

    plt = pyplot()
    rows = [u for u in units if u.hits]
    if not rows:
        raise ValueError("no unit has any image to show")
    cols = max(len(u.hits) for u in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols + 0.6, 1.9 * len(rows) + 0.4), squeeze=False)
    for r, unit in enumerate(rows):
        top = max(h.peak for h in unit.hits)
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(unit.hits):
                continue
            hit = unit.hits[c]
            rgb = np.asarray(load_image(hit.image))
            m = np.clip(upsample(hit.map, rgb.shape[:2]), 0, None) / top if top > 0 else np.zeros(rgb.shape[:2])
            panel = draw_box(heat_overlay(rgb, m), hit.box)
            ax.imshow(_square(panel, side))
            ax.set_title(f"{os.path.basename(hit.image)[:18]} ({hit.peak:.2f})", fontsize=7)
        label = f"unit {unit.index}\nw = {unit.weight:.3f}"
        if unit.contribution is not None:
            label += f"\nshare {unit.contribution:.3f}"
        axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _square(rgb: np.ndarray, side: int) -> np.ndarray:
    """Letterbox an image into a ``side`` x ``side`` tile (aspect kept, black borders)."""
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.zeros((side, side, 3), np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    tile[y : y + small.shape[0], x : x + small.shape[1]] = small
    return tile


def class_figure(result: Any, path: str | os.PathLike, side: int = 112) -> None:
    """:func:`class_panel` written atomically as PNG."""
    save_png(path, class_panel(result, side))


def class_panel(result: Any, side: int = 112) -> np.ndarray:
    """The paper's figure for one class (a :class:`camloc.discover.ClassPatterns`): a title, then
    one row per pattern (its share and most frequent crop labels above its exemplar crops, each
    crop's label under it) -> RGB."""
    cols = max((len(c) for c in result.exemplar_crops), default=1)
    width = max(cols * (side + 4) + 4, 320)
    rows = [title_band(f"{result.label} ({result.num_images} images, {len(result.patterns)} patterns)", width, 15, True)]
    for pat, crops in zip(result.patterns, result.exemplar_crops):
        names = ", ".join(f"{d['label']} ({d['count']})" for d in pat["labels"])
        rows.append(title_band(f"pattern {pat['pattern']}: {pat['share'] * 100:.0f}% of images" +
                          (f"  ·  {names}" if names else ""), width))
        strip = np.full((side + 22, width, 3), 255, np.uint8)
        for j, (crop, ex) in enumerate(zip(crops, pat["exemplars"])):
            x0 = 4 + j * (side + 4)
            strip[2:2 + side, x0:x0 + side] = crop
            strip[side + 2:side + 22, x0:x0 + side] = title_band(ex["label"] or "", side, 11, True)[:20]
        rows.append(strip)
    if not result.patterns:
        rows.append(title_band("no image counted for this class", width))
    return np.concatenate(rows, axis=0)


def classes_figure(results: Sequence[Any], path: str | os.PathLike, side: int = 112) -> None:
    """The class figures of several classes (:func:`class_panel`), one under the other, as a
    palette PNG (:func:`small_png`)."""
    parts = [class_panel(r, side) for r in results]
    width = max(a.shape[1] for a in parts)
    rows = [np.pad(a, ((0, 8), (0, width - a.shape[1]), (0, 0)), constant_values=255) for a in parts]
    small_png(np.concatenate(rows, axis=0), path)


def examples_figure(examples: Sequence[dict[str, Any]], path: str | os.PathLike, columns: int = 2,
                    panel_height: int = 160) -> None:
    """One :func:`camloc.viz.panels.topk_panel` per example (``image``: a file; ``target``: its true
    box, red; ``map``: a ``[0, 1]`` map; ``box``: the map's box, green; ``label`` over the map,
    ``title`` over the panel), ``columns`` a row, as a palette PNG (:func:`small_png`)."""
    from camloc.pixels.decode import load_image

    parts = []
    for e in examples:
        img = draw_box(np.asarray(load_image(e["image"])), e["target"], GT_COLOR)
        parts.append(topk_panel(img, [e["map"]], [e["box"]], [e["label"]], title=e["title"],
                                panel_height=panel_height))
    small_png(tile(parts, columns), path)


def tile(parts: Sequence[np.ndarray], columns: int = 2) -> np.ndarray:
    """Panels padded white to one size, ``columns`` a row."""
    h, w = max(a.shape[0] for a in parts), max(a.shape[1] for a in parts)
    parts = [np.pad(a, ((0, h - a.shape[0]), (0, w - a.shape[1]), (0, 0)), constant_values=255) for a in parts]
    while len(parts) % columns:
        parts.append(np.full_like(parts[0], 255))
    rows = [np.concatenate(parts[i:i + columns], axis=1) for i in range(0, len(parts), columns)]
    return np.concatenate(rows, axis=0)


def small_png(rgb: np.ndarray, path: str | os.PathLike, colors: int = 128) -> None:
    """Write ``rgb`` as a palette PNG (a fifth of the RGB file's size), atomically."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())


def _reproduction_panel(gray: np.ndarray, raw: np.ndarray, gt: list[int], tau: float, scale: int = 3) -> np.ndarray:
    """A canvas with the map overlaid, the ground truth (red), the 20 %-rule box (green) and the
    box at the method's best threshold (yellow), enlarged ``scale`` times."""
    from camloc.boxes import boxes_from_map
    from camloc.readings import normalize_map, upsample

    size = gray.shape[0]
    up = upsample(raw, (size, size))
    big = cv2.resize(np.repeat(gray[..., None], 3, axis=2), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    norm = normalize_map(up)
    img = heat_overlay(big, cv2.resize(norm, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR), alpha=0.45)

    def s(b: list[int]) -> list[int]:
        return [b[0] * scale, b[1] * scale, b[2] * scale + scale - 1, b[3] * scale + scale - 1]

    img = draw_box(img, s(gt), (255, 0, 0))
    best = boxes_from_map(up, tau)
    if best:
        img = draw_box(img, s(best[0]), (255, 230, 0))
    paper = boxes_from_map(up, 0.2)
    if paper:
        img = draw_box(img, s(paper[0]), (0, 255, 0))
    return img


def reproduction_examples(paths: list[Path], regime: str, images: Any, maps: dict[str, np.ndarray],
                          taus: dict[str, float], titles: dict[str, str], class_names: Sequence[str],
                          rows: int) -> None:
    """The reproduction's examples: one row per test canvas (``images``: ``gray``, ``boxes``,
    ``labels``), one column per method of ``titles`` (its maps, its best threshold in ``taus``)."""
    plt = pyplot()
    n = min(rows, len(images))
    keys = list(titles)
    fig, axes = plt.subplots(n, len(keys), figsize=(2.3 * len(keys), 2.35 * n), squeeze=False)
    for i in range(n):
        for j, key in enumerate(keys):
            ax = axes[i, j]
            ax.imshow(_reproduction_panel(images.gray[i], maps[key][i], images.boxes[i].tolist(), taus[key]))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[key], fontsize=9)
            if j == 0:
                ax.set_ylabel(class_names[int(images.labels[i])], fontsize=8)
    fig.suptitle(f"{regime} (CAM: positive part): red ground truth, green 20 % of the max, yellow best threshold",
                 fontsize=8)
    fig.tight_layout()
    save_figure(fig, *paths, dpi=110, tight=True)


def word_examples(panels: Sequence[dict[str, Any]], threshold: float, path: str) -> None:
    """The text benchmark's examples, four per row: each panel's ``image`` with its ``map``
    (``[0, 1]``, the image's size) overlaid, the ``words``' boxes (green) and, where found, the CAM
    ``box`` at ``threshold`` (red), the map's ``peak`` (white cross) and the ``iou`` as title."""
    plt = pyplot()
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows))
    for ax, p in zip(np.atleast_1d(axes).flat, panels):
        ax.imshow(p["image"])
        ax.imshow(p["map"], cmap="jet", alpha=0.4)
        for x0, y0, x1, y1 in p["words"]:
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, color="lime", lw=2))
        if p["box"] is not None:
            x0, y0, x1, y1 = p["box"]
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, color="red", lw=2))
            ax.plot(*p["peak"], marker="x", color="white", markersize=10, mew=3)
            ax.set_title(f"IoU {p['iou']:.2f}", fontsize=10)
        ax.axis("off")
    for ax in np.atleast_1d(axes).flat[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"CAM of a text/no-text probe: word box (green), CAM box at threshold {threshold:g} (red), peak (x)",
                 fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=72)
