"""A localization benchmark made of real Fashion-MNIST images, clean or over clutter.

Each sample is a square grey canvas (``Regime.canvas`` pixels a side, 64 by default) holding ONE
Fashion-MNIST item: the item is cut to the tight box of its pixels in the 28x28 source, resized
so that its longer side is a random length in ``[item_min, item_max]`` (aspect ratio kept) and
placed at a random position entirely inside the canvas. In the cluttered regime the background
first receives ``clutter`` fragments: square pieces (``fragment_min``..``fragment_max`` pixels a
side, cut at the source's own scale) of OTHER items of the same source split, each showing at least
a third of foreground, none touching the item's box, so that the label stays the item's class
while the background looks like bits of clothing.

* **label**: the item's Fashion-MNIST class (10 classes, :data:`CLASSES`).
* **ground-truth box**: the tight box ``[x0, y0, x1, y1]`` (inclusive corners, canvas pixels)
  of the placed item's pixels with intensity ``>= Regime.visible`` (25 of 255 by default); the
  item is drawn on top, so all of them are visible.
* **sources**: train images come only from Fashion-MNIST's train split (items and fragments);
  validation and test images only from its test split, validation from one half of it and test
  from the other (a seed-dependent partition), so that no test item is ever seen elsewhere.
* **ground-truth mask** (for PxAP): the placed item's pixels with intensity ``>= Regime.visible``,
  the very pixels the box is the tight box of (nothing else reaches inside the box, so on the
  canvas the mask is ``canvas >= visible`` within the box).
* **determinism**: a sample depends only on ``(seed, split name, index)`` and the source files.

:func:`write_benchmark` writes a generated split to disk in the CVPR 2020 weakly supervised
localization metadata layout (``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt``,
``localization.txt`` per split, and the masks as ``masks/<image id>`` PNGs listed in
``masks.txt``, camloc's extension of that layout for a box dataset with masks: see
:mod:`camloc.data.wsol`), so the dataset readers, ``camloc train`` and ``camloc evaluate``
read it like any other dataset. The source images come from :mod:`camloc.data.fashion_mnist`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from camloc.data.fashion_mnist import CLASSES, FASHION_DIR, load_fashion_mnist

if TYPE_CHECKING:
    from camloc.data.base import Split


@dataclass(frozen=True)
class Regime:
    """How the canvases of one regime are drawn (sizes in canvas pixels)."""

    name: str
    canvas: int = 64
    item_min: int = 40
    item_max: int = 56
    clutter: int = 0
    fragment_min: int = 6
    fragment_max: int = 9
    visible: int = 25

    def __post_init__(self) -> None:
        if not 8 <= self.item_min <= self.item_max <= self.canvas:
            raise ValueError(f"regime '{self.name}': need 8 <= item_min <= item_max <= canvas")
        if self.clutter < 0 or not 2 <= self.fragment_min <= self.fragment_max <= 28:
            raise ValueError(f"regime '{self.name}': need clutter >= 0 and 2 <= fragment_min <= fragment_max <= 28")


REGIMES: dict[str, Regime] = {
    # The ImageNet-like case: one large item, plain background.
    "clean": Regime("clean", canvas=64, item_min=36, item_max=56, clutter=0),
    # A smaller item among fragments of other items.
    "cluttered": Regime("cluttered", canvas=64, item_min=26, item_max=40, clutter=12, fragment_min=6, fragment_max=10),
}


@dataclass
class LocSet:
    """Generated canvases of one split.

    Attributes:
        images: ``(N, S, S)`` uint8 canvases.
        labels: ``(N,)`` class indices into :data:`CLASSES`.
        boxes: ``(N, 4)`` ground-truth ``[x0, y0, x1, y1]``, inclusive corners.
        masks: ``(N, S, S)`` bool ground-truth masks (the item's visible pixels).
        sources: ``(N,)`` index of each item in its Fashion-MNIST source split.
        name: the split name (``train``, ``val`` or ``test``).
        regime: the regime that drew it.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    sources: np.ndarray
    name: str
    regime: Regime
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def tight_box(mask: np.ndarray) -> list[int] | None:
    """``[x0, y0, x1, y1]`` (inclusive) of the True pixels of a 2-D mask, or ``None`` if none."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return None
    return [int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])]


def _crop_item(item: np.ndarray, visible: int) -> np.ndarray:
    box = tight_box(item >= visible)
    if box is None:
        return item
    x0, y0, x1, y1 = box
    return item[y0 : y1 + 1, x0 : x1 + 1]


def _resize_item(crop: np.ndarray, longer: int) -> np.ndarray:
    h, w = crop.shape
    scale = longer / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(crop, (nw, nh), interpolation=interp)


def _fragment(rng: np.random.Generator, pool: np.ndarray, size: int, visible: int) -> np.ndarray:
    """A ``size``-square piece of a random pool item showing at least a third of foreground."""
    for _ in range(20):
        item = pool[rng.integers(len(pool))]
        y, x = rng.integers(0, 28 - size + 1, size=2)
        piece = item[y : y + size, x : x + size]
        if (piece >= visible).mean() >= 1 / 3:
            return piece
    return piece


def _overlaps(a: tuple[int, int, int, int], b: list[int]) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def render(rng: np.random.Generator, item: np.ndarray, pool: np.ndarray, regime: Regime) -> tuple[np.ndarray, list[int]]:
    """Draw one canvas: ``item`` (28x28 uint8) resized and placed, over fragments from ``pool``.

    Returns ``(canvas (S, S) uint8, box [x0, y0, x1, y1])``.
    """
    canvas, box, _ = render_with_mask(rng, item, pool, regime)
    return canvas, box


def render_with_mask(rng: np.random.Generator, item: np.ndarray, pool: np.ndarray, regime: Regime
                     ) -> tuple[np.ndarray, list[int], np.ndarray]:
    """:func:`render` and the item's mask ``(S, S)`` bool (its placed pixels ``>= visible``); the
    random draws are :func:`render`'s, so canvases and boxes do not depend on asking for the mask."""
    s = regime.canvas
    obj = _resize_item(_crop_item(item, regime.visible), int(rng.integers(regime.item_min, regime.item_max + 1)))
    h, w = obj.shape
    y = int(rng.integers(0, s - h + 1))
    x = int(rng.integers(0, s - w + 1))
    inner = tight_box(obj >= regime.visible)
    if inner is None:  # an item with no pixel above the threshold: its box is its placement
        inner = [0, 0, w - 1, h - 1]
    box = [x + inner[0], y + inner[1], x + inner[2], y + inner[3]]
    canvas = np.zeros((s, s), dtype=np.uint8)
    placed = 0
    for _ in range(regime.clutter * 10):
        if placed == regime.clutter:
            break
        f = int(rng.integers(regime.fragment_min, regime.fragment_max + 1))
        fy, fx = (int(v) for v in rng.integers(0, s - f + 1, size=2))
        if _overlaps((fx, fy, fx + f - 1, fy + f - 1), box):
            continue
        piece = _fragment(rng, pool, f, regime.visible)
        np.maximum(canvas[fy : fy + f, fx : fx + f], piece, out=canvas[fy : fy + f, fx : fx + f])
        placed += 1
    np.maximum(canvas[y : y + h, x : x + w], obj, out=canvas[y : y + h, x : x + w])
    mask = np.zeros((s, s), dtype=bool)
    mask[y : y + h, x : x + w] = obj >= regime.visible
    return canvas, box, mask


_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def source_indices(split: str, n_source: int, seed: int) -> np.ndarray:
    """The source items a split may use: all of Fashion-MNIST train for ``train``; one half of
    Fashion-MNIST test for ``val`` and the other half for ``test`` (a permutation fixed by seed)."""
    if split == "train":
        return np.arange(n_source)
    perm = np.random.default_rng([seed, 7]).permutation(n_source)
    half = n_source // 2
    return np.sort(perm[:half] if split == "val" else perm[half:])


def generate(
    regime: Regime | str,
    split: str,
    n: int,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    source: tuple[np.ndarray, np.ndarray] | None = None,
) -> LocSet:
    """Generate ``n`` canvases of ``split`` (``train``/``val``/``test``) in ``regime``.

    Items are drawn without replacement from the split's source items while they last (then a
    new pass). ``source`` may give the Fashion-MNIST ``(images, labels)`` of the right split
    (train for ``train``, test otherwise) to avoid re-reading the files.
    """
    regime = REGIMES[regime] if isinstance(regime, str) else regime
    if split not in _SPLIT_CODES:
        raise ValueError(f"split must be train, val or test, got '{split}'")
    if n < 0:
        raise ValueError(f"number of images must be >= 0, got {n}")
    images, labels = source if source is not None else load_fashion_mnist("train" if split == "train" else "test", root)
    allowed = source_indices(split, len(images), seed)
    rng = np.random.default_rng([seed, _SPLIT_CODES[split], 2020])
    order = np.concatenate([rng.permutation(allowed) for _ in range(-(-n // max(1, len(allowed))))])[:n]
    pool = images[allowed]
    out = np.zeros((n, regime.canvas, regime.canvas), dtype=np.uint8)
    boxes = np.zeros((n, 4), dtype=np.int64)
    masks = np.zeros((n, regime.canvas, regime.canvas), dtype=bool)
    for i, src in enumerate(order):
        out[i], boxes[i], masks[i] = render_with_mask(rng, images[src], pool, regime)
    return LocSet(images=out, labels=labels[order].copy(), boxes=boxes, sources=order.astype(np.int64),
                  name=split, regime=regime, masks=masks)


def iter_image_ids(locset: LocSet) -> Iterator[str]:
    """Image ids as written to the metadata: ``<split>/<class index>/<split>_<index>.png``."""
    for i, c in enumerate(locset.labels):
        yield f"{locset.name}/{int(c)}/{locset.name}_{i:06d}.png"


def regime_dict(regime: Regime) -> dict:
    return asdict(regime)


MASKS = "masks"  # a split's mask PNGs: <split folder>/masks/<image id>


def to_split(locset: LocSet, folder: str | os.PathLike, masks: bool = True) -> Split:
    """The :class:`Split` of a generated set whose images live (or will live) under ``folder``,
    with its mask paths (``folder/masks/<image id>``) when ``masks`` and the set has masks."""
    from camloc.data.base import Sample, Split

    s = locset.regime.canvas
    root = os.fspath(folder)
    with_masks = masks and locset.masks is not None
    samples = []
    for image_id, label, box in zip(iter_image_ids(locset), locset.labels, locset.boxes):
        mask = os.path.join(root, MASKS, image_id) if with_masks else None
        samples.append(Sample(image_id=image_id, path=os.path.join(root, image_id), label=int(label),
                              boxes=[[int(v) for v in box]], size=(s, s), mask=mask, masks=[mask] if mask else []))
    return Split(samples=samples, classes=list(CLASSES), name=locset.name)


def _write_png(path: str, image: np.ndarray) -> None:
    from camloc.io import atomic_write_bytes

    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, png.tobytes())


def _write_masks(split: Split, masks: np.ndarray, progress: bool) -> None:
    from tqdm import tqdm

    for sample, mask in tqdm(list(zip(split.samples, masks)), desc=f"masks {split.name}", unit="img",
                             disable=None if progress else True, leave=False):
        _write_png(sample.masks[0], mask.astype(np.uint8) * 255)


def write_split(locset: LocSet, folder: str | os.PathLike, progress: bool = True, masks: bool = True) -> Split:
    """Write the canvases as PNG files and the split's metadata (CVPR 2020 layout) in ``folder``;
    with ``masks``, the masks too (0/255 PNGs under ``folder/masks/``, listed in ``masks.txt``).

    Image ids are ``<split>/<class index>/<split>_<index>.png``, relative to ``folder`` (the
    metadata folder itself, so ``read_wsol(folder)`` finds them). Every file is written atomically.
    """
    from tqdm import tqdm

    from camloc.data.wsol import write_wsol

    split = to_split(locset, folder, masks)
    for sample, image in tqdm(list(zip(split.samples, locset.images)), desc=f"write {locset.name}",
                              unit="img", disable=None if progress else True, leave=False):
        _write_png(sample.path, image)
    if masks and locset.masks is not None:
        _write_masks(split, locset.masks, progress)
    write_wsol(split, folder)
    return split


def write_benchmark(
    out_dir: str | os.PathLike,
    regime: Regime | str,
    sizes: dict[str, int],
    seed: int = 0,
    root: str | os.PathLike | None = None,
    progress: bool = True,
    masks: bool = True,
) -> dict:
    """Generate and write a whole benchmark: ``out_dir/<split>/`` for each ``split: n`` of ``sizes``
    (``train``, ``val``, ``test``), plus ``out_dir/benchmark.json`` describing it; ``masks``
    writes every split's masks too (``"masks": true`` in the description).

    Returns the description (regime, seed, split sizes, box statistics).
    """
    from camloc.io import atomic_write_json

    regime = REGIMES[regime] if isinstance(regime, str) else regime
    out = os.fspath(out_dir)
    sources: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    info: dict = {"format": "camloc-fashion-loc/1", "regime": regime_dict(regime), "seed": seed,
                  "source": os.fspath(root or FASHION_DIR), "classes": list(CLASSES), "splits": {}}
    for name, n in sizes.items():
        kind = "train" if name == "train" else "test"
        if kind not in sources:
            sources[kind] = load_fashion_mnist(kind, root)
        locset = generate(regime, name, n, seed=seed, source=sources[kind])
        if n:
            write_split(locset, os.path.join(out, name), progress=progress, masks=masks)
        wh = (locset.boxes[:, 2:] - locset.boxes[:, :2] + 1) if n else np.zeros((0, 2))
        info["splits"][name] = {
            "images": int(n), "source_split": kind,
            "mean_box_area_fraction": float((wh[:, 0] * wh[:, 1]).mean() / regime.canvas**2) if n else 0.0,
            "class_counts": np.bincount(locset.labels, minlength=len(CLASSES)).tolist(),
        }
    info["masks"] = masks
    atomic_write_json(os.path.join(out, "benchmark.json"), info)
    return info


def has_masks(bench_dir: str | os.PathLike) -> bool:
    """True when the benchmark in ``bench_dir`` was written with its masks."""
    import json

    path = os.path.join(os.fspath(bench_dir), "benchmark.json")
    return os.path.isfile(path) and bool(json.loads(open(path).read()).get("masks"))


def add_masks(bench_dir: str | os.PathLike, root: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Add the masks to a benchmark written without them (by an earlier camloc), in place.

    Every split ``benchmark.json`` lists is regenerated from its regime and seed (the source
    files: ``root``, else the folder it names) and checked against what is stored (every image
    pixel for pixel, every id, label and box) before anything is written; then the mask PNGs
    and ``masks.txt`` are added and ``benchmark.json`` says ``"masks": true``. The stored
    images, boxes and labels are left as they are. Returns the updated description.

    Raises:
        DataError: one line naming the first file that differs from the regenerated benchmark
            (nothing is written), or a folder that holds no fashion-loc benchmark.
    """
    import json

    from tqdm import tqdm

    from camloc.data.wsol import read_wsol, write_wsol
    from camloc.errors import DataError
    from camloc.io import atomic_write_json

    out = os.fspath(bench_dir)
    path = os.path.join(out, "benchmark.json")
    try:
        info = json.loads(open(path).read())
        regime, seed = Regime(**info["regime"]), int(info["seed"])
        sizes = {name: int(v["images"]) for name, v in info["splits"].items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a fashion-loc benchmark description ({type(err).__name__}: {err})") from None
    if info.get("format") != "camloc-fashion-loc/1":
        raise DataError(f"{path}: format {info.get('format')!r}, not camloc-fashion-loc/1")
    source = root if root is not None else info.get("source")
    sources: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    checked = []
    for name, n in sizes.items():
        if not n:
            continue
        kind = "train" if name == "train" else "test"
        if kind not in sources:
            sources[kind] = load_fashion_mnist(kind, source)
        locset = generate(regime, name, n, seed=seed, source=sources[kind])
        folder = os.path.join(out, name)
        stored = read_wsol(folder, strict=True)
        expected = to_split(locset, folder)
        where = f"regenerated with seed {seed}, regime '{regime.name}'; no mask written"
        if len(stored) != n:
            raise DataError(f"{folder}: {len(stored)} images stored, benchmark.json says {n} ({where})")
        for got, want, image in tqdm(list(zip(stored.samples, expected.samples, locset.images)),
                                     desc=f"check {name}", unit="img", disable=None if progress else True,
                                     leave=False):
            if (got.image_id, got.label, got.boxes) != (want.image_id, want.label, want.boxes):
                raise DataError(f"{folder}: image {got.image_id} (label {got.label}, boxes {got.boxes}) differs from "
                                f"the regenerated {want.image_id} (label {want.label}, boxes {want.boxes}) ({where})")
            pixels = cv2.imread(got.path, cv2.IMREAD_UNCHANGED)
            if pixels is None or pixels.shape != image.shape or not np.array_equal(pixels, image):
                why = "unreadable" if pixels is None else "differs from the regenerated image"
                raise DataError(f"{got.path}: {why} ({where})")
        checked.append((locset, folder, expected))
    for locset, folder, expected in checked:
        _write_masks(expected, locset.masks, progress)
        write_wsol(expected, folder)
    info["masks"] = True
    atomic_write_json(path, info)
    return info
