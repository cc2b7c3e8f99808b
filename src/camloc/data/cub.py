"""CUB-200-2011 as it ships (the ``CUB_200_2011/`` folder of the official archive).

Files read, all ``<id> <value...>`` separated by single spaces, ids 1-based::

    images.txt               <image_id> <class folder>/<file>.jpg   (relative to images/)
    image_class_labels.txt   <image_id> <class_id>                  1-based
    train_test_split.txt     <image_id> <1 = train | 0 = test>
    bounding_boxes.txt       <image_id> <x> <y> <width> <height>    floats, pixels
    classes.txt              <class_id> <class name>

Conversions: ``label = class_id - 1``; class names from ``classes.txt`` in class-id order
(ids must run 1..N); ``Sample.image_id`` is the ``images.txt`` path (the same ids as the
WSOL metadata for CUB), ``Sample.path = root/images/<path>``; ``Sample.size`` is ``None``
(the metadata gives no sizes; images are not opened).

Boxes: ``[x0, y0, x1, y1] = [r(x), r(y), r(x + width), r(y + height)]`` with
``r(v) = floor(v + 0.5)``, i.e. the corner pixel at ``x + width`` is counted inside the
box. This is the conversion the published CVPR 2020 CUB metadata applies (the first
image's ``60.0 27.0 325.0 304.0`` becomes ``60,27,385,331``), so scores computed through
this reader and through that metadata agree.
"""

from __future__ import annotations

import math
import os

from camloc.data._lines import Problems, parse_float, parse_int, read_rows, where
from camloc.data.base import Sample, Split
from camloc.errors import DataError

__all__ = ["CUB_FILES", "cub_box", "find_cub_root", "read_cub"]

CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "classes.txt")
SPLITS = ("train", "test", "all")


def find_cub_root(root: str | os.PathLike) -> str | None:
    """``root`` or ``root/CUB_200_2011`` when it holds ``images.txt`` and ``classes.txt``, else ``None``."""
    for cand in (os.fspath(root), os.path.join(os.fspath(root), "CUB_200_2011")):
        if os.path.isfile(os.path.join(cand, "images.txt")) and os.path.isfile(os.path.join(cand, "classes.txt")):
            return cand
    return None


def cub_box(x: float, y: float, width: float, height: float) -> list[int]:
    """CUB ``x y width height`` -> inclusive ``[x0, y0, x1, y1]`` (see the module docstring)."""

    def r(v: float) -> int:
        return math.floor(v + 0.5)

    return [r(x), r(y), r(x + width), r(y + height)]


def read_cub(root: str | os.PathLike, split: str = "train", *, strict: bool = False) -> Split:
    """Read CUB-200-2011 from ``root`` (the folder holding ``images.txt``, or its parent).

    Args:
        root: the ``CUB_200_2011`` folder (or a folder containing it).
        split: ``"train"``, ``"test"`` or ``"all"`` (``train_test_split.txt``: 1 = train).
        strict: raise on the first per-image problem instead of skipping the image.

    Returns:
        A :class:`Split` named ``split`` in ``images.txt`` order.

    Raises:
        DataError: ``<file>:<line>: <reason>`` for a missing file, a line with the wrong field
            count or a non-numeric value, class ids that do not run 1..N, or an empty split.
            Per-image problems (an id missing from a file, a label without a class, a negative
            box size, a split flag other than 0/1, a repeated id) skip the image and are
            recorded in ``Split.skipped`` unless ``strict``.
    """
    if split not in SPLITS:
        raise DataError(f"CUB split must be one of {', '.join(SPLITS)}, got {split!r}")
    base = find_cub_root(root) or os.fspath(root)
    f = {name: os.path.join(base, name) for name in CUB_FILES}
    problems = Problems(strict)

    names: dict[int, str] = {}
    for line, (cid, name) in read_rows(f["classes.txt"], 2, sep=None, maxsplit=1):
        number = parse_int(cid, f["classes.txt"], line, "class id")
        if number in names:
            raise DataError(f"{where(f['classes.txt'], line)}: class id {number} given twice")
        names[number] = name.strip()
    if sorted(names) != list(range(1, len(names) + 1)):
        raise DataError(f"{f['classes.txt']}: class ids must run 1..N, got {len(names)} ids "
                        f"from {min(names, default=0)} to {max(names, default=0)}")
    classes = [names[i] for i in range(1, len(names) + 1)]

    order: list[str] = []
    rel: dict[str, str] = {}
    path = f["images.txt"]
    for line, (iid, relpath) in read_rows(path, 2, sep=None, maxsplit=1):
        iid = str(parse_int(iid, path, line, "image id"))
        relpath = relpath.strip()
        if iid in rel:
            problems.line(f"{where(path, line)}: image id {iid} listed again; line ignored")
            continue
        rel[iid] = relpath
        order.append(iid)

    def table(name: str, nfields: int) -> dict[str, tuple[int, list[str]]]:
        out: dict[str, tuple[int, list[str]]] = {}
        for line, fields in read_rows(f[name], nfields, sep=None):
            iid = str(parse_int(fields[0], f[name], line, "image id"))
            if iid not in rel:
                problems.line(f"{where(f[name], line)}: image id {iid} is not in images.txt; line ignored")
            elif iid in out:
                problems.image(iid, f"{where(f[name], line)}: image id {iid} given twice")
            else:
                out[iid] = (line, fields[1:])
        return out

    labels = table("image_class_labels.txt", 2)
    flags = table("train_test_split.txt", 2) if split != "all" else {}
    boxes = table("bounding_boxes.txt", 5)

    samples = []
    for iid in order:
        for name, tab in (("image_class_labels.txt", labels), ("train_test_split.txt", flags if split != "all" else None),
                          ("bounding_boxes.txt", boxes)):
            if tab is not None and iid not in tab:
                problems.image(iid, f"{f[name]}: no line for image id {iid} ({rel[iid]})")
        if problems.skipped(iid):
            continue
        if split != "all":
            line, (flag,) = flags[iid]
            is_train = parse_int(flag, f["train_test_split.txt"], line, "split flag")
            if is_train not in (0, 1):
                problems.image(iid, f"{where(f['train_test_split.txt'], line)}: split flag {is_train} is not 0 or 1")
                continue
            if is_train != (split == "train"):
                continue
        line, (cid,) = labels[iid]
        class_id = parse_int(cid, f["image_class_labels.txt"], line, "class id")
        if not 1 <= class_id <= len(classes):
            problems.image(iid, f"{where(f['image_class_labels.txt'], line)}: class id {class_id} is not in classes.txt")
            continue
        line, values = boxes[iid]
        x, y, w, h = (parse_float(v, f["bounding_boxes.txt"], line, n) for v, n in zip(values, ("x", "y", "width", "height")))
        if w < 0 or h < 0 or x < 0 or y < 0:
            problems.image(iid, f"{where(f['bounding_boxes.txt'], line)}: box x={x} y={y} width={w} height={h} "
                                "has a negative value")
            continue
        samples.append(Sample(
            image_id=rel[iid],
            path=os.path.join(base, "images", rel[iid]),
            label=class_id - 1,
            boxes=[cub_box(x, y, w, h)],
            size=None,
        ))
    skipped = [f"skipped image {i} ({rel[i]}): {r}" for i, r in problems.by_image.items()] + problems.lines
    if not samples:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise DataError(f"{f['images.txt']}: no usable images in split {split!r} ({len(order)} listed){first}")
    return Split(samples=samples, classes=classes, name=split, skipped=skipped)
