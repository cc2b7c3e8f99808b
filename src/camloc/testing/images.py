"""The fixtures' images: class-coloured rectangles on dark noise, and what a writer returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from camloc.data.base import Split
from camloc.io import atomic_write_text, atomic_write_with

# Object colours by class index (RGB): classes differ by colour, so a tiny net can learn them.
PALETTE = [(230, 40, 40), (40, 200, 60), (50, 80, 235), (235, 210, 40), (200, 60, 220), (40, 210, 210)]


@dataclass
class Fixture:
    """What a fixture writer put on disk.

    Attributes:
        root: the dataset root to hand to the reader / ``open_dataset``.
        split: the split the reader must return for the fixture's default arguments.
        files: every file written (images and metadata), in writing order.
        metadata_dir: the metadata folder (WSOL layout) or ``root``.
        image_root: the folder image ids are relative to.
        extra: format-specific details (e.g. the other splits, the wnids).
    """

    root: str
    split: Split
    files: list[str] = field(default_factory=list)
    metadata_dir: str = ""
    image_root: str = ""
    extra: dict = field(default_factory=dict)


def draw_image(
    path: str | os.PathLike, size: tuple[int, int], boxes: list[list[int]], label: int, seed: int = 0
) -> str:
    """Write an RGB image of ``size = (w, h)`` with filled rectangles at the inclusive ``boxes``.

    The background is dark noise (values 10..50), each rectangle is ``PALETTE[label]``.
    The format follows the suffix (``.jpg``/``.jpeg``/``.JPEG`` -> JPEG quality 95, else PNG).
    """
    w, h = size
    rng = np.random.default_rng(seed)
    arr = rng.integers(10, 51, size=(h, w, 3), dtype=np.uint8)
    for x0, y0, x1, y1 in boxes:
        arr[y0 : y1 + 1, x0 : x1 + 1] = PALETTE[label % len(PALETTE)]
    img = Image.fromarray(arr, "RGB")
    fmt = "JPEG" if str(path).lower().endswith((".jpg", ".jpeg")) else "PNG"
    atomic_write_with(path, lambda f: img.save(f, format=fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    return os.fspath(path)


def draw_mask(path: str, size: tuple[int, int], box: list[int], value: int = 255) -> str:
    w, h = size
    arr = np.zeros((h, w), dtype=np.uint8)
    x0, y0, x1, y1 = box
    arr[y0 : y1 + 1, x0 : x1 + 1] = value
    atomic_write_with(path, lambda f: Image.fromarray(arr, "L").save(f, format="PNG"))
    return path


def item_layout(i: int, n_boxes: int = 1) -> tuple[tuple[int, int], list[list[int]]]:
    """Size and inclusive boxes of the ``i``-th fixture image (varied, deterministic, in bounds)."""
    w, h = 40 + 6 * (i % 5), 32 + 4 * (i % 3)
    boxes = []
    for k in range(n_boxes):
        x0, y0 = 3 + (2 * i + 9 * k) % 11, 2 + (3 * i + 7 * k) % 9
        boxes.append([x0, y0, min(w - 1, x0 + 10 + i % 7), min(h - 1, y0 + 8 + i % 5)])
    return (w, h), boxes


def write_lines(path: str, lines: list[str], files: list[str]) -> None:
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))
    files.append(path)
