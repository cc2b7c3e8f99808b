"""ILSVRC 2012 (ImageNet-1k) classification + localization, as it ships.

Layouts found under ``root`` (the first that exists wins)::

    root/train/<wnid>/<wnid>_<n>.JPEG                 training images, label = folder
    root/val/ILSVRC2012_val_<8 digits>.JPEG           validation images, flat ...
    root/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG    ... or sorted into class folders
    root/ILSVRC/Data/CLS-LOC/{train,val}/...          the same, in the packaged-archive layout

Validation labels and boxes come from (``annotations="auto"`` takes the first present):

* ``root/LOC_val_solution.csv``: header ``ImageId,PredictionString``, then one row per image,
  ``ILSVRC2012_val_00000001,n01751748 111 108 441 193`` with ``wnid x0 y0 x1 y1`` repeated
  once per box; or
* one PASCAL-VOC-style XML file per image, ``<stem>.xml`` in the first existing of
  ``root/val_xml/``, ``root/Annotations/CLS-LOC/val/``, ``root/ILSVRC/Annotations/CLS-LOC/val/``,
  ``root/Annotations/``: ``<annotation><size><width>W</width><height>H</height></size>``
  and ``<object><name>wnid</name><bndbox><xmin>..</xmin><ymin>..</ymin><xmax>..</xmax>
  <ymax>..</ymax></bndbox></object>`` per box. XML also gives ``Sample.size``.

A flat ``val/`` takes its label from the first box's wnid; a foldered one from its folder.
Only the boxes of the labelled class go in ``Sample.boxes``. Training images carry no boxes.

Classes are wnids in sorted order (the index order of torchvision's ImageNet and of
ImageNet-trained classifiers): the wnids of ``root/LOC_synset_mapping.txt``
(``<wnid> <names>`` per line, names become ``Split.classes``), else the ``train/`` folders,
else the ``val/`` folders, else the wnids in the annotations (then indices match the
1000-class order only when every class occurs).

Boxes are kept exactly as written: integer pixel corners, 0-based and inclusive, in
``[0, W-1] x [0, H-1]`` (e.g. ``xmax = 499`` for a 500-pixel-wide image), the convention
of :mod:`camloc.boxes`; the CVPR 2020 ILSVRC metadata copies these same numbers.
``Sample.image_id`` is ``<split>/<path under the split folder>``, e.g.
``val/ILSVRC2012_val_00000001.JPEG`` (the WSOL metadata's ids).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from tqdm import tqdm

from camloc.data._lines import Problems, box_problem, parse_int, read_lines, read_rows, where
from camloc.data.base import Sample, Split
from camloc.errors import DataError, one_line
from camloc.pixels.formats import IMAGE_SUFFIXES

__all__ = ["find_ilsvrc_images", "read_ilsvrc", "read_val_solution", "read_voc_xml"]

SPLITS = ("train", "val")
XML_DIRS = ("val_xml", "Annotations/CLS-LOC/val", "ILSVRC/Annotations/CLS-LOC/val", "Annotations")
Objects = list[tuple[str, list[int]]]  # (wnid, inclusive box)


def find_ilsvrc_images(root: str | os.PathLike, split: str) -> str | None:
    """The folder holding ``split``'s images: ``root/<split>`` or ``root/ILSVRC/Data/CLS-LOC/<split>``."""
    for cand in (os.path.join(root, split), os.path.join(root, "ILSVRC", "Data", "CLS-LOC", split)):
        if os.path.isdir(cand):
            return os.fspath(cand)
    return None


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def _subdirs(folder: str) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _images_in(folder: str) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and _is_image(e.name))


def read_val_solution(path: str | os.PathLike) -> dict[str, tuple[int, Objects]]:
    """``LOC_val_solution.csv`` -> ``{image stem: (line, [(wnid, [x0, y0, x1, y1]), ...])}``.

    Raises :class:`DataError` ``<file>:<line>: ...`` for a missing header, a row without
    exactly two fields, a prediction string whose token count is not a multiple of 5,
    a non-integer coordinate, or a repeated image id.
    """
    rows = read_rows(path, 2)
    if not rows or [f.strip() for f in rows[0][1]] != ["ImageId", "PredictionString"]:
        line = rows[0][0] if rows else 1
        raise DataError(f"{where(path, line)}: expected the header 'ImageId,PredictionString'")
    out: dict[str, tuple[int, Objects]] = {}
    for line, (image_id, text) in rows[1:]:
        tokens = text.split()
        if not tokens or len(tokens) % 5:
            raise DataError(f"{where(path, line)}: prediction string must be 'wnid x0 y0 x1 y1' repeated, "
                            f"got {len(tokens)} tokens")
        objects = []
        for k in range(0, len(tokens), 5):
            box = [parse_int(v, path, line, n) for v, n in zip(tokens[k + 1 : k + 5], ("x0", "y0", "x1", "y1"))]
            objects.append((tokens[k], box))
        stem = image_id.strip()
        if stem in out:
            raise DataError(f"{where(path, line)}: image {stem} given again (first at line {out[stem][0]})")
        out[stem] = (line, objects)
    return out


def read_voc_xml(path: str | os.PathLike) -> tuple[tuple[int, int] | None, Objects]:
    """One PASCAL-VOC-style annotation file -> ``((width, height) or None, [(wnid, box), ...])``.

    Raises :class:`DataError` naming the file (and the line, for XML that is not well formed).
    """
    name = os.fspath(path)
    try:
        tree = ET.parse(name)
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except ET.ParseError as err:
        raise DataError(f"{name}:{err.position[0]}: not well-formed XML") from None
    except OSError as err:
        raise DataError(f"{name}: cannot read ({one_line(err)})") from None
    top = tree.getroot()
    if top.tag != "annotation":
        raise DataError(f"{name}: root element is <{top.tag}>, expected <annotation>")

    def number(elem: ET.Element | None, tag: str) -> int:
        text = elem.findtext(tag) if elem is not None else None
        if text is None:
            raise DataError(f"{name}: missing <{tag}>")
        try:
            value = float(text.strip())
        except ValueError:
            raise DataError(f"{name}: <{tag}> {text.strip()!r} is not a number") from None
        if not value.is_integer():
            raise DataError(f"{name}: <{tag}> {text.strip()!r} is not an integer")
        return int(value)

    size_el = top.find("size")
    size = (number(size_el, "width"), number(size_el, "height")) if size_el is not None else None
    objects = []
    for obj in top.iter("object"):
        wnid = (obj.findtext("name") or "").strip()
        if not wnid:
            raise DataError(f"{name}: <object> without <name>")
        bb = obj.find("bndbox")
        if bb is None:
            raise DataError(f"{name}: <object> {wnid} without <bndbox>")
        objects.append((wnid, [number(bb, t) for t in ("xmin", "ymin", "xmax", "ymax")]))
    return size, objects


def _read_mapping(path: str) -> dict[str, str]:
    names: dict[str, str] = {}
    for line, text in read_lines(path):
        parts = text.split(None, 1)
        wnid = parts[0]
        if wnid in names:
            raise DataError(f"{where(path, line)}: wnid {wnid} given twice")
        names[wnid] = parts[1].strip() if len(parts) > 1 else wnid
    return names


def read_ilsvrc(
    root: str | os.PathLike, split: str = "val", *, annotations: str = "auto", strict: bool = False
) -> Split:
    """Read ILSVRC 2012 ``split`` (``"train"`` or ``"val"``) from ``root`` (see the module docstring).

    Args:
        root: the dataset root.
        split: ``"train"`` or ``"val"``.
        annotations: ``"auto"`` (CSV, else XML), ``"csv"`` or ``"xml"``: where val labels/boxes come from.
        strict: raise on the first per-image problem instead of skipping the image.

    Returns:
        A :class:`Split` in sorted folder/file order; ``classes`` are the mapping's names (or wnids).

    Raises:
        DataError: a missing image folder or annotation source, a malformed metadata line,
            or an empty split; per-image problems (no annotation, a box outside the image or
            with ``x1 < x0``, an unknown wnid, a label/folder mismatch) skip the image and are
            recorded in ``Split.skipped`` unless ``strict``.
    """
    if split not in SPLITS:
        raise DataError(f"ILSVRC split must be one of {', '.join(SPLITS)}, got {split!r}")
    if annotations not in ("auto", "csv", "xml"):
        raise DataError(f"annotations must be auto, csv or xml, got {annotations!r}")
    root = os.fspath(root)
    image_dir = find_ilsvrc_images(root, split)
    if image_dir is None:
        raise DataError(f"{root}: no {split}/ image folder (looked for {split}/ and ILSVRC/Data/CLS-LOC/{split}/)")
    problems = Problems(strict)

    mapping_path = os.path.join(root, "LOC_synset_mapping.txt")
    mapping = _read_mapping(mapping_path) if os.path.isfile(mapping_path) else None
    folders = _subdirs(image_dir)
    train_dir = find_ilsvrc_images(root, "train")

    # ---- annotations (val)
    solution: dict[str, tuple[int, Objects]] | None = None
    xml_dir: str | None = None
    csv_path = os.path.join(root, "LOC_val_solution.csv")
    if split == "val":
        if annotations in ("auto", "csv") and os.path.isfile(csv_path):
            solution = read_val_solution(csv_path)
        elif annotations in ("auto", "xml"):
            xml_dir = next((os.path.join(root, d) for d in XML_DIRS if os.path.isdir(os.path.join(root, d))), None)
        if annotations == "csv" and solution is None:
            raise DataError(f"{csv_path}: no such file")
        if annotations == "xml" and xml_dir is None:
            raise DataError(f"{root}: no XML annotation folder (looked for {', '.join(XML_DIRS)})")
        if solution is None and xml_dir is None and not folders:
            raise DataError(f"{image_dir}: flat val/ needs labels: LOC_val_solution.csv or an XML folder "
                            f"({', '.join(XML_DIRS)}) under {root}")

    # ---- classes: sorted wnids
    if mapping is not None:
        wnids = sorted(mapping)
    elif train_dir is not None and _subdirs(train_dir):
        wnids = _subdirs(train_dir)
    elif folders:
        wnids = folders
    else:
        wnids = sorted({w for _, objs in (solution or {}).values() for w, _ in objs})
        if xml_dir is not None and not wnids:
            wnids = sorted({w for f in os.listdir(xml_dir) if f.endswith(".xml")
                            for w, _ in _safe_xml(os.path.join(xml_dir, f))})
    index = {w: i for i, w in enumerate(wnids)}
    classes = [mapping[w] for w in wnids] if mapping is not None else list(wnids)

    # ---- listing: (relative path, folder wnid or None)
    listing: list[tuple[str, str | None]] = []
    if folders:
        if _images_in(image_dir):
            problems.line(f"{image_dir}: {len(_images_in(image_dir))} images beside the class folders ignored")
        for folder in tqdm(folders, desc=f"listing {split}", unit="class", disable=None, leave=False):
            if folder not in index:
                problems.line(f"{os.path.join(image_dir, folder)}: folder {folder} is not a known wnid; "
                              "its images are skipped")
                continue
            listing.extend((f"{folder}/{name}", folder) for name in _images_in(os.path.join(image_dir, folder)))
    else:
        listing = [(name, None) for name in _images_in(image_dir)]

    samples = []
    seen_stems: set[str] = set()
    for rel, folder in tqdm(listing, desc=f"reading {split}", unit="img", disable=None, leave=False):
        image_id = f"{split}/{rel}"
        stem = os.path.splitext(os.path.basename(rel))[0]
        seen_stems.add(stem)
        size: tuple[int, int] | None = None
        objects: Objects | None = None
        source = ""
        if solution is not None:
            source = csv_path
            if stem in solution:
                line, objects = solution[stem]
                source = where(csv_path, line)
            else:
                problems.image(image_id, f"{csv_path}: no row for image {stem}")
                continue
        elif xml_dir is not None:
            source = os.path.join(xml_dir, stem + ".xml")
            try:
                size, objects = read_voc_xml(source)
            except DataError as err:
                problems.image(image_id, str(err))
                continue
        label_wnid = folder
        if objects is not None:
            if not objects:
                problems.image(image_id, f"{source}: no objects for image {stem}")
                continue
            if label_wnid is None:
                label_wnid = objects[0][0]
            boxes = [box for wnid, box in objects if wnid == label_wnid]
            if not boxes:
                problems.image(image_id, f"{source}: no box of class {label_wnid} (the image's folder) "
                                         f"for image {stem}, only {sorted({w for w, _ in objects})}")
                continue
            bad = next((why for why in (box_problem(b, size) for b in boxes) if why), None)
            if bad:
                problems.image(image_id, f"{source}: {bad}")
                continue
        else:
            boxes = []
        if label_wnid not in index:
            problems.image(image_id, f"{source or image_dir}: wnid {label_wnid} is not a known class")
            continue
        samples.append(Sample(image_id=image_id, path=os.path.join(image_dir, rel), label=index[label_wnid],
                              boxes=boxes, size=size))

    skipped = [f"skipped {i}: {r}" for i, r in problems.by_image.items()] + problems.lines
    if solution is not None:
        missing = len(set(solution) - seen_stems)
        if missing:
            skipped.append(f"{csv_path}: {missing} annotated images not found under {image_dir}; ignored")
    if not samples:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise DataError(f"{image_dir}: no usable images ({len(listing)} found){first}")
    return Split(samples=samples, classes=classes, name=split, skipped=skipped)


def _safe_xml(path: str) -> Objects:
    try:
        return read_voc_xml(path)[1]
    except DataError:
        return []
