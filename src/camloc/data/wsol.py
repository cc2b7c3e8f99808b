"""The CVPR 2020 WSOL evaluation metadata layout (MaxBoxAccV2 / PxAP benchmarks).

One folder per split holds plain comma-separated text files, one record per line::

    image_ids.txt       <image_id>                      order of the split
    class_labels.txt    <image_id>,<class_index>        0-based
    image_sizes.txt     <image_id>,<width>,<height>     optional (mask datasets ship none or an empty one)
    localization.txt    <image_id>,<x0>,<y0>,<x1>,<y1>  box datasets; one line per box
                     or <image_id>,<mask>,<ignore>      mask datasets; one line per mask,
                                                        the ignore path on the first line only
    class_names.txt     <name>                          optional camloc extension, line i = class i
    masks.txt           <image_id>,<mask>,<ignore>      optional camloc extension: the masks of a BOX
                                                        dataset (the mask lines of localization.txt,
                                                        which holds the boxes), so that one split
                                                        carries both (the Fashion-MNIST benchmark)

``image_id`` is a path relative to the image root, e.g.
``001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg`` or
``val/ILSVRC2012_val_00000001.JPEG``. Boxes are kept exactly as written: integer pixel
corners, inclusive, inside ``[0, w-1] x [0, h-1]``, the convention of :mod:`camloc.boxes`.
Mask and ignore paths are relative to the mask root.
"""

from __future__ import annotations

import os

from camloc.data._lines import Problems, box_problem, parse_int, read_lines, read_rows, where
from camloc.data.base import Sample, Split
from camloc.errors import DataError
from camloc.io import atomic_write_text

__all__ = ["WSOL_FILES", "is_wsol_dir", "read_wsol", "write_wsol"]

WSOL_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
MAX_CLASSES = 100_000  # without class_names.txt the classes are class_0 .. class_<largest index>


def is_wsol_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds ``image_ids.txt`` and ``class_labels.txt``."""
    return all(os.path.isfile(os.path.join(path, f)) for f in WSOL_FILES[:2])


def read_wsol(
    metadata_dir: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    mask_root: str | os.PathLike | None = None,
    strict: bool = False,
) -> Split:
    """Read one split of the WSOL evaluation metadata layout.

    Args:
        metadata_dir: the folder holding ``image_ids.txt`` and the other files.
        image_root: the folder image ids are relative to (``Sample.path = image_root/image_id``);
            defaults to ``metadata_dir`` itself.
        mask_root: the folder mask paths are relative to; defaults to ``image_root``.
        strict: raise on the first per-image problem instead of skipping the image.

    Returns:
        A :class:`Split` in the order of ``image_ids.txt``, named after ``metadata_dir``.
        Classes are ``class_names.txt`` when present, else ``class_<i>`` for
        ``i < 1 + max label`` (a label of :data:`MAX_CLASSES` or more is then a per-image problem).

    Raises:
        DataError: ``<file>:<line>: <reason>`` for a line with the wrong field count or a
            non-numeric value, a missing required file, or an empty split. Per-image problems
            (a box with ``x1 < x0`` or outside the image, an id missing from a file, a label
            out of range, a duplicate id) raise only when ``strict``; otherwise the image is
            left out and the reason is recorded in ``Split.skipped``.
    """
    meta = os.fspath(metadata_dir)
    root = os.fspath(image_root) if image_root is not None else meta
    masks_at = os.fspath(mask_root) if mask_root is not None else root
    files = {name: os.path.join(meta, name) for name in (*WSOL_FILES, "class_names.txt", "masks.txt")}
    problems = Problems(strict)

    ids, where_id = _read_ids(files["image_ids.txt"], problems)
    known = set(ids)

    def unknown(path: str, line: int, image_id: str) -> bool:
        if image_id in known:
            return False
        problems.line(f"{where(path, line)}: image id {image_id!r} is not in image_ids.txt; line ignored")
        return True

    names = _read_class_names(files["class_names.txt"])
    labels: dict[str, int] = {}
    path = files["class_labels.txt"]
    for line, (image_id, text) in read_rows(path, 2):
        label = parse_int(text, path, line, "class index")
        if unknown(path, line, image_id):
            continue
        if label < 0:
            problems.image(image_id, f"{where(path, line)}: class index {label} is negative")
        elif names is None and label >= MAX_CLASSES:  # the class list is made up to the largest index
            problems.image(image_id, f"{where(path, line)}: class index {label} is beyond {MAX_CLASSES - 1}, "
                                     "the most without a class_names.txt")
        elif labels.setdefault(image_id, label) != label:
            problems.image(image_id, f"{where(path, line)}: second, different class index for {image_id!r}")

    sizes: dict[str, tuple[int, int]] | None = None
    path = files["image_sizes.txt"]
    size_rows = read_rows(path, 3) if os.path.exists(path) else []
    if size_rows:  # the published OpenImages metadata ships an empty image_sizes.txt: no sizes
        sizes = {}
        for line, (image_id, ws, hs) in size_rows:
            size = (parse_int(ws, path, line, "width"), parse_int(hs, path, line, "height"))
            if unknown(path, line, image_id):
                continue
            if size[0] < 1 or size[1] < 1:
                problems.image(image_id, f"{where(path, line)}: image size {size[0]}x{size[1]} is empty")
            elif sizes.setdefault(image_id, size) != size:
                problems.image(image_id, f"{where(path, line)}: second, different size for {image_id!r}")

    boxes: dict[str, list[list[int]]] | None = None
    mask_lines: dict[str, list[str]] = {}
    mask_file: str | None = None  # the file the masks come from
    ignores: dict[str, str] = {}

    def add_mask(path: str, line: int, fields: list[str]) -> None:
        image_id, mask, ignore = fields
        if not mask.strip():
            problems.image(image_id, f"{where(path, line)}: empty mask path")
        mask_lines.setdefault(image_id, []).append(mask)
        if ignore and ignores.setdefault(image_id, ignore) != ignore:
            problems.image(image_id, f"{where(path, line)}: second, different ignore path")

    path = files["localization.txt"]
    rows = read_rows(path, (3, 5)) if os.path.exists(path) else []
    if rows:  # an empty localization.txt means "no localization", as a missing one does
        kind = len(rows[0][1])
        if kind == 5:
            boxes = {}
        else:
            mask_file = "localization.txt"
        for line, fields in rows:
            if len(fields) != kind:
                raise DataError(f"{where(path, line)}: expected {kind} fields like line {rows[0][0]}, got {len(fields)}")
            image_id = fields[0]
            if boxes is not None:
                box = [parse_int(v, path, line, name) for v, name in zip(fields[1:], ("x0", "y0", "x1", "y1"))]
                if unknown(path, line, image_id):
                    continue
                why = box_problem(box, sizes.get(image_id) if sizes is not None else None)
                if why:
                    problems.image(image_id, f"{where(path, line)}: {why}")
                boxes.setdefault(image_id, []).append(box)
            elif not unknown(path, line, image_id):
                add_mask(path, line, fields)
    path = files["masks.txt"]
    extra = read_rows(path, 3) if os.path.exists(path) else []
    if extra:
        if mask_file is not None:
            raise DataError(f"{path}: localization.txt already holds masks; masks.txt is for box datasets")
        mask_file = "masks.txt"
        for line, fields in extra:
            if not unknown(path, line, fields[0]):
                add_mask(path, line, fields)
    masks = mask_lines if mask_file is not None else None

    classes = names
    if classes is None:
        top = max((labels[i] for i in ids if i in labels), default=-1)
        classes = [f"class_{i}" for i in range(top + 1)]

    samples = []
    for image_id in ids:
        for name, table in (("class_labels.txt", labels), ("image_sizes.txt", sizes),
                            ("localization.txt", boxes), (mask_file or "masks.txt", masks)):
            if table is not None and image_id not in table:
                problems.image(image_id, f"{files[name]}: no line for image id {image_id!r} "
                                         f"(image_ids.txt:{where_id[image_id]})")
        if image_id in labels and labels[image_id] >= len(classes):
            problems.image(image_id, f"{files['class_labels.txt']}: class index {labels[image_id]} of "
                                     f"{image_id!r} is out of range for {len(classes)} classes in class_names.txt")
        if problems.skipped(image_id):
            continue
        image_masks = [os.path.join(masks_at, m) for m in masks[image_id]] if masks is not None else []
        ignore = ignores.get(image_id)
        samples.append(Sample(
            image_id=image_id,
            path=os.path.join(root, image_id),
            label=labels[image_id],
            boxes=boxes[image_id] if boxes is not None else [],
            size=sizes[image_id] if sizes is not None else None,
            mask=image_masks[0] if image_masks else None,
            ignore=os.path.join(masks_at, ignore) if ignore else None,
            masks=image_masks,
        ))
    skipped = [f"skipped {i!r}: {r}" for i, r in problems.by_image.items()] + problems.lines
    if not samples:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise DataError(f"{files['image_ids.txt']}: no usable images ({len(ids)} listed){first}")
    name = os.path.basename(os.path.normpath(meta))
    return Split(samples=samples, classes=classes, name=name, skipped=skipped)


def _read_ids(path: str, problems: Problems) -> tuple[list[str], dict[str, int]]:
    ids: list[str] = []
    first: dict[str, int] = {}
    for line, text in read_lines(path):
        if "," in text:
            raise DataError(f"{where(path, line)}: expected 1 field (an image id), got {text.count(',') + 1}")
        if text in first:
            problems.line(f"{where(path, line)}: image id {text!r} listed again (first at line {first[text]}); "
                          "line ignored")
            continue
        first[text] = line
        ids.append(text)
    return ids, first


def _read_class_names(path: str) -> list[str] | None:
    if not os.path.exists(path):
        return None
    names = []
    expected = 1
    for line, text in read_lines(path):
        if line != expected:
            raise DataError(f"{where(path, expected)}: empty class name")
        names.append(text.strip())
        expected += 1
    return names


def write_wsol(
    split: Split,
    metadata_dir: str | os.PathLike,
    *,
    mask_root: str | os.PathLike | None = None,
) -> list[str]:
    """Write ``split`` in the WSOL metadata layout (each file atomically); return the paths written.

    Writes ``image_ids.txt``, ``class_labels.txt``, ``class_names.txt``, ``image_sizes.txt``
    (when every sample has a size) and ``localization.txt`` (boxes when the samples have
    boxes, mask lines when they have masks; samples with both get their boxes there and their
    mask lines in ``masks.txt``). Mask paths are written relative to
    ``mask_root``; by default to each sample's image root (``Sample.path`` minus the trailing
    ``image_id``), so that ``read_wsol(dir, image_root)`` reads back the same samples.

    Raises:
        DataError: ``sample <i> (<id>)`` for an id that is empty, repeated, or holds a comma or
            a line break, a box with ``x1 < x0`` or outside its image, a sample without
            boxes/masks/size when the others have them, or an empty split.
    """
    meta = os.fspath(metadata_dir)
    if not split.samples:
        raise DataError(f"{meta}: cannot write an empty split")
    ids: list[str] = []
    labels: list[str] = []
    sizes: list[str] = []
    loc: list[str] = []
    mask_loc: list[str] = []
    have_sizes = [s.size is not None for s in split.samples]
    have_masks = [bool(s.masks or s.mask) for s in split.samples]
    have_boxes = [bool(s.boxes) for s in split.samples]
    seen: set[str] = set()
    for i, s in enumerate(split.samples):
        at = f"{meta}: sample {i} ({s.image_id!r})"
        if not s.image_id or any(c in s.image_id for c in ",\n\r") or s.image_id != s.image_id.strip():
            raise DataError(f"{at}: image id must be non-empty, without commas, line breaks or outer spaces")
        if s.image_id in seen:
            raise DataError(f"{at}: image id repeated")
        seen.add(s.image_id)
        if not 0 <= s.label < len(split.classes):
            raise DataError(f"{at}: label {s.label} out of range for {len(split.classes)} classes")
        if any(have_sizes) and s.size is None:
            raise DataError(f"{at}: no image size while other samples have one")
        ids.append(s.image_id)
        labels.append(f"{s.image_id},{s.label}")
        if s.size is not None:
            sizes.append(f"{s.image_id},{int(s.size[0])},{int(s.size[1])}")
        if any(have_masks):
            all_masks = s.masks or ([s.mask] if s.mask else [])
            if not all_masks:
                raise DataError(f"{at}: no mask while other samples have masks")
            base = os.fspath(mask_root) if mask_root is not None else _image_root(s, meta)
            for j, m in enumerate(all_masks):
                ignore = _relative(s.ignore, base) if (j == 0 and s.ignore) else ""
                mask_loc.append(f"{s.image_id},{_relative(m, base)},{ignore}")
        if any(have_boxes):
            if not s.boxes:
                raise DataError(f"{at}: no box while other samples have boxes")
            for box in s.boxes:
                box = [int(v) for v in box]
                why = box_problem(box, s.size)
                if why:
                    raise DataError(f"{at}: {why}")
                loc.append(f"{s.image_id},{box[0]},{box[1]},{box[2]},{box[3]}")
    for name in split.classes:
        if not name.strip() or "\n" in name or "\r" in name:
            raise DataError(f"{meta}: class name {name!r} must be non-empty and one line")

    out = {
        "class_names.txt": split.classes,
        "class_labels.txt": labels,
        "image_sizes.txt": sizes if all(have_sizes) else None,
        # boxes and masks: the boxes in localization.txt, the masks in masks.txt (camloc's extension)
        "localization.txt": (loc or mask_loc) or None,
        "masks.txt": mask_loc if (loc and mask_loc) else None,
        "image_ids.txt": ids,
    }
    written = []
    for name, lines in out.items():
        path = os.path.join(meta, name)
        if lines is None:
            if os.path.exists(path):  # a stale file from an earlier write would be read back
                os.remove(path)
            continue
        atomic_write_text(path, "".join(f"{line}\n" for line in lines))
        written.append(path)
    return written


def _image_root(sample: Sample, fallback: str) -> str:
    """The folder ``sample.path`` is ``image_id`` relative to, or ``fallback``."""
    path, image_id = sample.path.replace(os.sep, "/"), sample.image_id.replace(os.sep, "/")
    if path == image_id:
        return "."
    if path.endswith("/" + image_id):
        return sample.path[: len(sample.path) - len(image_id) - 1] or "/"
    return fallback


def _relative(path: str, base: str) -> str:
    """``path`` relative to ``base``: the text after ``base/`` verbatim when it starts so, else relpath."""
    prefix = base.rstrip("/" + os.sep) + os.sep
    if path.startswith(prefix) and base not in ("", "."):
        rel = path[len(prefix):]
    elif os.path.isabs(path) == os.path.isabs(base):
        rel = os.path.relpath(path, base)
    else:
        rel = path
    if any(c in rel for c in ",\n\r"):
        raise DataError(f"{path}: a mask path must not hold commas or line breaks")
    return rel.replace(os.sep, "/")
