"""Scoring a text / no-text probe on the text benchmark (:mod:`camloc.experiments.textloc`): the
CAM box of the ``text`` class against the words' boxes, the pointing game, and random baselines;
:func:`choose_threshold` picks the box threshold on the training split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from camloc.boxes import best_iou, hit, inside, iou_matrix
from camloc.data.base import Sample, Split
from camloc.errors import TextlocError


def covered_fraction(boxes: Sequence[Sequence[int]], size: tuple[int, int]) -> float:
    """Fraction of a ``size = (w, h)`` image's pixels inside at least one box: the chance that a
    uniformly random pixel hits a word (the pointing game's random baseline)."""
    w, h = size
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1] = True
    return float(mask.mean())


def random_box_rate(gt: Sequence[Sequence[int]], size: tuple[int, int], rng: np.random.Generator, n: int = 200,
                    like: Sequence[int] | None = None, iou: float = 0.5) -> float:
    """Fraction of ``n`` random boxes with IoU >= ``iou`` with one of the ``gt`` boxes.

    Without ``like``, corners are uniform: ``x0 <= x1`` are the sorted pair of two uniform
    columns, likewise rows. With ``like``, the boxes have ``like``'s width and height and a
    uniformly random position inside the image.
    """
    w, h = size
    if like is None:
        xs = np.sort(rng.integers(0, w, size=(n, 2)), axis=1)
        ys = np.sort(rng.integers(0, h, size=(n, 2)), axis=1)
        boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)
    else:
        bw, bh = min(w, like[2] - like[0] + 1), min(h, like[3] - like[1] + 1)
        x0, y0 = rng.integers(0, w - bw + 1, size=n), rng.integers(0, h - bh + 1, size=n)
        boxes = np.stack([x0, y0, x0 + bw - 1, y0 + bh - 1], axis=1)
    best = iou_matrix(boxes, gt).max(axis=1, initial=0.0)
    return float(np.mean(best >= iou))


THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def text_maps(net, probe, samples: Sequence[Sample], *, batch_size: int = 32, progress: bool = True):
    """Raw CAMs of the probe's ``text`` class on ``samples`` (see :func:`camloc.probe.cam_maps`)."""
    from camloc.probe import attach_probe, cam_maps

    if "text" not in probe.class_names:
        raise TextlocError(f"the probe has no class 'text' (classes {', '.join(probe.class_names)})")
    saved = (net.probe, net.class_names)
    try:
        attach_probe(net, probe)
        return cam_maps(net, samples, [probe.class_names.index("text")] * len(samples), batch_size=batch_size,
                        progress=progress, desc="text CAMs")
    finally:
        net.probe, net.class_names = saved


def choose_threshold(net, probe, split: Split, thresholds: Sequence[float] = THRESHOLDS, *, max_images: int = 64,
                     batch_size: int = 32, progress: bool = True) -> tuple[float, dict[float, float]]:
    """The CAM-box threshold with the best localization accuracy on ``split``'s text images.

    Meant for the *training* split: its word boxes are then the only boxes used before testing
    (the published CVPR 2020 protocol likewise calibrates the threshold on a held-out set with
    boxes). Uses at most ``max_images`` text images; ties go to the smaller threshold.
    Returns ``(threshold, {threshold: accuracy})``.
    """
    from camloc.probe import box_and_peak

    text = [s for s in split.samples if s.boxes][: max(1, int(max_images))]
    maps, _ = text_maps(net, probe, text, batch_size=batch_size, progress=progress)
    pairs = [(m, s) for m, s in zip(maps, text) if m is not None]
    acc = {float(t): float(np.mean([hit(box_and_peak(m.map, m.size, t).box, s.boxes) for m, s in pairs]))
           for t in thresholds}
    best = max(acc, key=lambda t: (acc[t], -t))
    return best, acc


def score_textloc(net, probe, split: Split, *, thresholds: Sequence[float] = (0.2,), n_random: int = 200,
                  seed: int = 0, batch_size: int = 32, progress: bool = True) -> dict:
    """Score a text / no-text probe on ``split`` (one forward pass per image).

    Returns a dict with ``accuracy`` (text vs no text, all images) and, over the images with
    text, using the CAM of the ``text`` class (the known-class setting):

    * ``localization[t]``: CAM box at threshold ``t`` with IoU >= 0.5 with a word's box (the
      map min-max normalized), and ``localization_positive[t]`` the same with the map read as
      its positive part over its max (``norm="positive"``);
    * ``pointing``: the upsampled map's maximum inside a word's box;
    * baselines on the same images: ``random_box`` (uniform corners) and
      ``random_box_same_size[t]`` (the CAM box's size at a uniform position), both averaged
      over ``n_random`` draws per image, and ``random_point`` (the exact chance that a uniform
      pixel is in a word);
    * ``per_image``: ``{"image", "peak", "words", "boxes": {t: box}, "iou": {t: iou}}``.
    """
    from camloc.probe import box_and_peak

    maps, skipped = text_maps(net, probe, split.samples, batch_size=batch_size, progress=progress)
    index = {c: i for i, c in enumerate(probe.class_names)}
    right = [int(np.argmax(m.logits)) == index.get(split.classes[s.label], -1) for s, m in zip(split.samples, maps)
             if m is not None]
    text = [(s, m) for s, m in zip(split.samples, maps) if s.boxes]
    rng = np.random.default_rng(seed)
    ts = [float(t) for t in thresholds]
    loc: dict[float, list[bool]] = {t: [] for t in ts}
    loc_pos: dict[float, list[bool]] = {t: [] for t in ts}
    same: dict[float, list[float]] = {t: [] for t in ts}
    point, rbox, rpoint, per_image = [], [], [], []
    for s, m in text:
        if m is None:
            continue
        found = {t: box_and_peak(m.map, m.size, t) for t in ts}
        size, peak = found[ts[0]].size, found[ts[0]].peak
        record = {"image": s.image_id, "peak": peak, "words": s.boxes, "boxes": {}, "iou": {}}
        for t, f in found.items():
            iou = best_iou(f.box, s.boxes)
            loc[t].append(hit(f.box, s.boxes))
            same[t].append(random_box_rate(s.boxes, size, rng, n_random, like=f.box) if f.box is not None else 0.0)
            record["boxes"][t], record["iou"][t] = f.box, iou
            loc_pos[t].append(hit(box_and_peak(m.map, m.size, t, "positive").box, s.boxes))
        point.append(peak is not None and any(inside(peak, g) for g in s.boxes))
        rbox.append(random_box_rate(s.boxes, size, rng, n_random))
        rpoint.append(covered_fraction(s.boxes, size))
        per_image.append(record)

    def mean(v: list) -> float:
        return float(np.mean(v)) if v else float("nan")

    return {
        "accuracy": mean(right),
        "n_images": len(right),
        "n_text": len(point),
        "localization": {t: mean(v) for t, v in loc.items()},
        "localization_positive": {t: mean(v) for t, v in loc_pos.items()},
        "pointing": mean(point),
        "random_box": mean(rbox),
        "random_box_same_size": {t: mean(v) for t, v in same.items()},
        "random_point": mean(rpoint),
        "skipped": skipped,
        "per_image": per_image,
    }
