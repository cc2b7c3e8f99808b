"""The fixture writers, one per dataset format the readers accept.

Each ``write_*_fixture(root, ...)`` draws small real images (JPEG, or PNG masks) holding
one or more bright, class-coloured rectangles on a dark, lightly textured background,
writes the format's metadata files, and returns a :class:`Fixture` whose ``split`` is
exactly what the matching reader must return (same order, labels, converted boxes,
sizes and paths). A rectangle's inclusive box ``[x0, y0, x1, y1]`` is the set of pixels
it paints, so a perfect localizer scores IoU 1.

    >>> fx = write_wsol_fixture(tmp_path)
    >>> read_wsol(fx.metadata_dir, fx.image_root).samples == fx.split.samples
    True
"""

from __future__ import annotations

import os

import numpy as np

from camloc.data.base import Sample, Split
from camloc.io import atomic_write_text
from camloc.testing.images import Fixture, draw_mask, item_layout, write_lines, draw_image


# --------------------------------------------------------------------------- WSOL metadata


def write_wsol_fixture(
    root: str | os.PathLike,
    split: str = "test",
    *,
    masks: bool = False,
    num_classes: int = 3,
    per_class: int = 2,
    image_root: str | os.PathLike | None = None,
    class_names: bool = False,
) -> Fixture:
    """The WSOL evaluation metadata layout at ``root/<split>/``.

    Images go to ``image_root`` (default ``root/<split>``, the reader's default) as
    ``<class folder>/<name>.jpg``. Box datasets: the second image of each class has two
    boxes (two ``localization.txt`` lines). Mask datasets (``masks=True``, OpenImages-style):
    ``localization.txt`` holds ``id,mask,ignore`` lines, two masks for the second image of
    each class (the second line with an empty ignore path), and no ``image_sizes.txt``.
    ``class_names=True`` adds the optional ``class_names.txt``.
    """
    root = os.fspath(root)
    meta = os.path.join(root, split)
    images = os.fspath(image_root) if image_root is not None else meta
    names = [f"{c + 1:03d}.Bird_{c}" for c in range(num_classes)]
    files: list[str] = []
    ids, labels, sizes, loc, samples = [], [], [], [], []
    i = 0
    for c in range(num_classes):
        for k in range(per_class):
            image_id = f"{names[c]}/Bird_{c}_{k:04d}_{100 + i}.jpg"
            size, boxes = item_layout(i, n_boxes=2 if k == 1 else 1)
            files.append(draw_image(os.path.join(images, image_id), size, boxes, c, seed=i))
            ids.append(image_id)
            labels.append(f"{image_id},{c}")
            sample = Sample(image_id=image_id, path=os.path.join(images, image_id), label=c)
            if masks:
                stem = image_id[: -len(".jpg")]
                mask_paths = []
                for j, box in enumerate(boxes):
                    rel = f"{stem}_m{c}_{j}.png"
                    files.append(draw_mask(os.path.join(images, rel), size, box))
                    mask_paths.append(rel)
                ignore = f"{stem}_ignore.png"
                files.append(draw_mask(os.path.join(images, ignore), size, [0, 0, 1, 1]))
                for j, rel in enumerate(mask_paths):
                    loc.append(f"{image_id},{rel},{ignore if j == 0 else ''}")
                sample.masks = [os.path.join(images, m) for m in mask_paths]
                sample.mask = sample.masks[0]
                sample.ignore = os.path.join(images, ignore)
            else:
                sizes.append(f"{image_id},{size[0]},{size[1]}")
                loc.extend(f"{image_id},{b[0]},{b[1]},{b[2]},{b[3]}" for b in boxes)
                sample.boxes = boxes
                sample.size = size
            samples.append(sample)
            i += 1
    write_lines(os.path.join(meta, "image_ids.txt"), ids, files)
    write_lines(os.path.join(meta, "class_labels.txt"), labels, files)
    if not masks:
        write_lines(os.path.join(meta, "image_sizes.txt"), sizes, files)
    write_lines(os.path.join(meta, "localization.txt"), loc, files)
    classes = [f"class_{c}" for c in range(num_classes)]
    if class_names:
        write_lines(os.path.join(meta, "class_names.txt"), names, files)
        classes = list(names)
    return Fixture(root=root, split=Split(samples, classes, name=split), files=files,
                   metadata_dir=meta, image_root=images)


# --------------------------------------------------------------------------- CUB-200-2011


def write_cub_fixture(
    root: str | os.PathLike, split: str = "test", *, num_classes: int = 3, per_class: int = 3
) -> Fixture:
    """CUB-200-2011 exactly as it ships, under ``root/CUB_200_2011/``.

    Image ``k`` of each class is a training image when ``k`` is even (flag 1), else a test
    image. A painted inclusive box ``[x0, y0, x1, y1]`` is written to ``bounding_boxes.txt``
    as floats ``x0 y0 (x1 - x0) (y1 - y0)``, so the reader's conversion (``x1 = x + width``)
    returns the painted box. ``extra["splits"]`` holds the expected train/test/all splits;
    ``split`` picks the one in ``Fixture.split``.
    """
    base = os.path.join(os.fspath(root), "CUB_200_2011")
    names = [f"{c + 1:03d}.Bird_{'ABCDEFGHIJ'[c % 10]}{c}" for c in range(num_classes)]
    files: list[str] = []
    images, labels, flags, bboxes = [], [], [], []
    expected: dict[str, list[Sample]] = {"train": [], "test": [], "all": []}
    number = 0
    for c, name in enumerate(names):
        for k in range(per_class):
            number += 1
            rel = f"{name}/{name[4:]}_{k + 1:04d}_{7000 + number}.jpg"
            size, (box,) = item_layout(number)
            files.append(draw_image(os.path.join(base, "images", rel), size, [box], c, seed=number))
            x0, y0, x1, y1 = box
            images.append(f"{number} {rel}")
            labels.append(f"{number} {c + 1}")
            is_train = int(k % 2 == 0)
            flags.append(f"{number} {is_train}")
            bboxes.append(f"{number} {float(x0)} {float(y0)} {float(x1 - x0)} {float(y1 - y0)}")
            sample = Sample(image_id=rel, path=os.path.join(base, "images", rel), label=c, boxes=[box])
            expected["all"].append(sample)
            expected["train" if is_train else "test"].append(sample)
    write_lines(os.path.join(base, "classes.txt"), [f"{c + 1} {n}" for c, n in enumerate(names)], files)
    write_lines(os.path.join(base, "images.txt"), images, files)
    write_lines(os.path.join(base, "image_class_labels.txt"), labels, files)
    write_lines(os.path.join(base, "train_test_split.txt"), flags, files)
    write_lines(os.path.join(base, "bounding_boxes.txt"), bboxes, files)
    splits = {k: Split(v, list(names), name=k) for k, v in expected.items()}
    return Fixture(root=base, split=splits[split], files=files, metadata_dir=base,
                   image_root=os.path.join(base, "images"), extra={"splits": splits})


# --------------------------------------------------------------------------- ILSVRC 2012

ILSVRC_SYNSETS = [
    ("n01440764", "tench, Tinca tinca"),
    ("n01443537", "goldfish, Carassius auratus"),
    ("n01484850", "great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias"),
    ("n01491361", "tiger shark, Galeocerdo cuvieri"),
]


def _voc_xml(stem: str, size: tuple[int, int], objects: list[tuple[str, list[int]]]) -> str:
    parts = [f"<annotation>\n\t<folder>val</folder>\n\t<filename>{stem}</filename>\n"
             f"\t<source>\n\t\t<database>ILSVRC_2012</database>\n\t</source>\n"
             f"\t<size>\n\t\t<width>{size[0]}</width>\n\t\t<height>{size[1]}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
             f"\t<segmented>0</segmented>\n"]
    for wnid, (x0, y0, x1, y1) in objects:
        parts.append(f"\t<object>\n\t\t<name>{wnid}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
                     f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n"
                     f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n")
    parts.append("</annotation>\n")
    return "".join(parts)


def write_ilsvrc_fixture(
    root: str | os.PathLike,
    split: str = "val",
    *,
    annotations: str = "both",
    val_folders: bool = False,
    layout: str = "plain",
    num_classes: int = 3,
    per_class: int = 2,
    mapping: bool = True,
) -> Fixture:
    """ILSVRC 2012 as it ships: ``train/<wnid>/<wnid>_<n>.JPEG`` and ``val/ILSVRC2012_val_<8 digits>.JPEG``.

    ``annotations``: ``"csv"`` writes ``LOC_val_solution.csv`` (rows in a shuffled order, as
    the real file), ``"xml"`` writes ``val_xml/<stem>.xml`` (``Annotations/CLS-LOC/val`` ...
    for ``layout="kaggle"``, where images go to ``ILSVRC/Data/CLS-LOC/``), ``"both"`` both.
    Validation image ``j`` has class ``j % num_classes``; every third one has a second box of
    its class, and every fourth a box of another class (which the reader must drop).
    ``val_folders=True`` sorts val images into ``val/<wnid>/``. ``mapping`` writes
    ``LOC_synset_mapping.txt`` for the first ``num_classes + 1`` synsets (one class has no
    images, so the class list must come from the mapping). ``extra["splits"]`` holds both splits.
    """
    if num_classes + 1 > len(ILSVRC_SYNSETS):
        raise ValueError(f"at most {len(ILSVRC_SYNSETS) - 1} classes")
    root = os.fspath(root)
    data = os.path.join(root, "ILSVRC", "Data", "CLS-LOC") if layout == "kaggle" else root
    xml_dir = os.path.join(root, "Annotations", "CLS-LOC", "val") if layout == "kaggle" else os.path.join(root, "val_xml")
    synsets = ILSVRC_SYNSETS[: num_classes + 1] if mapping else ILSVRC_SYNSETS[:num_classes]
    wnids = [w for w, _ in synsets]
    classes = [n for _, n in synsets] if mapping else list(wnids)
    files: list[str] = []
    expected: dict[str, list[Sample]] = {"train": [], "val": []}
    for c in range(num_classes):
        wnid = wnids[c]
        for k in range(per_class):
            rel = f"{wnid}/{wnid}_{1000 + 37 * k}.JPEG"
            size, boxes = item_layout(c * per_class + k)
            files.append(draw_image(os.path.join(data, "train", rel), size, boxes, c, seed=100 + c * per_class + k))
            expected["train"].append(Sample(f"train/{rel}", os.path.join(data, "train", rel), c))
    rows = []
    for j in range(num_classes * per_class):
        c = j % num_classes
        stem = f"ILSVRC2012_val_{j + 1:08d}"
        size, boxes = item_layout(j + 3, n_boxes=2 if j % 3 == 2 else 1)
        other = [] if j % 4 != 3 else [(wnids[(c + 1) % num_classes], [0, 0, size[0] - 1, 4])]
        objects = [(wnids[c], b) for b in boxes]
        objects = objects[:1] + other + objects[1:]  # the foreign box sits between the labelled ones
        rel = f"{wnids[c]}/{stem}.JPEG" if val_folders else f"{stem}.JPEG"
        files.append(draw_image(os.path.join(data, "val", rel), size, boxes, c, seed=500 + j))
        rows.append(f"{stem}," + " ".join(f"{w} {b[0]} {b[1]} {b[2]} {b[3]}" for w, b in objects))
        if annotations in ("xml", "both"):
            path = os.path.join(xml_dir, f"{stem}.xml")
            atomic_write_text(path, _voc_xml(stem, size, objects))
            files.append(path)
        expected["val"].append(Sample(f"val/{rel}", os.path.join(data, "val", rel), c, boxes,
                                      size if annotations == "xml" else None))
    if val_folders:
        expected["val"].sort(key=lambda s: s.image_id)
    if annotations in ("csv", "both"):
        order = [int(j) for j in np.random.default_rng(0).permutation(len(rows))]  # shuffled, like the real file
        write_lines(os.path.join(root, "LOC_val_solution.csv"), ["ImageId,PredictionString"] +
                     [rows[j] for j in order], files)
    if mapping:
        write_lines(os.path.join(root, "LOC_synset_mapping.txt"), [f"{w} {n}" for w, n in synsets], files)
    splits = {k: Split(v, list(classes), name=k) for k, v in expected.items()}
    return Fixture(root=root, split=splits[split], files=files, metadata_dir=root,
                   image_root=os.path.join(data, split), extra={"splits": splits, "wnids": wnids})


# --------------------------------------------------------------------------- image folder


def write_folder_fixture(
    root: str | os.PathLike,
    split: str | None = "val",
    *,
    classes: tuple[str, ...] = ("cat", "dog", "fox"),
    per_class: int = 2,
    suffixes: tuple[str, ...] = (".jpg", ".png"),
) -> Fixture:
    """An image folder ``root/<split>/<class>/<n><suffix>`` (``root/<class>/...`` when ``split`` is ``None``).

    Image ``k`` of a class uses ``suffixes[k % len(suffixes)]``. The expected split has no
    boxes (the format has none); ``extra["boxes"]`` maps image ids to the painted boxes.
    """
    base = os.path.join(os.fspath(root), split) if split else os.fspath(root)
    files: list[str] = []
    samples: list[Sample] = []
    painted: dict[str, list[list[int]]] = {}
    i = 0
    for c, cls in enumerate(sorted(classes)):
        for k in range(per_class):
            rel = f"{cls}/{cls}_{k:03d}{suffixes[k % len(suffixes)]}"
            size, boxes = item_layout(i)
            files.append(draw_image(os.path.join(base, rel), size, boxes, c, seed=900 + i))
            painted[rel] = boxes
            i += 1
    for c, cls in enumerate(sorted(classes)):
        rels = sorted(f"{cls}/{os.path.basename(p)}" for p in files if os.path.dirname(p) == os.path.join(base, cls))
        samples.extend(Sample(rel, os.path.join(base, rel), c) for rel in rels)
    name = split or os.path.basename(os.path.normpath(base))
    return Fixture(root=os.fspath(root), split=Split(samples, sorted(classes), name=name), files=files,
                   metadata_dir=base, image_root=base, extra={"boxes": painted})
