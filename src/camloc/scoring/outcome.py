"""One map against one sample: the per-image outcome every metric is counted from.

:func:`score` reads a sample's map once and returns an :class:`Outcome`: the protocol's map
(bicubic resize to 224x224, then a reading in [0, 1]), the ground-truth boxes scaled to 224x224
and the best IoU at every CAM threshold for each contour rule (MaxBoxAcc, MaxBoxAccV2), the
paper's box (``localize``'s own rule, :func:`camloc.boxes.paper_boxes`: the map upsampled to the
image or its 512-px box grid, ``box_threshold`` of the read map, largest component),
and the PxAP ground truth for a sample with masks. :class:`Tally` adds outcomes into the
evaluators of :mod:`camloc.metrics`; its state is sums, so tallies of chunks scored in other
processes (or ranks) merge into the single-process result.

Torch-free unless a paper box or a raw map is asked for (``camloc evaluate-maps`` starts
without torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from camloc.data.base import Sample
from camloc.metrics.maxboxacc import RESIZE, MaxBoxAccEvaluator, best_ious, cam_thresholds, resize_box
from camloc.metrics.pxap import PxAPEvaluator, ground_truth

Box = list[int]


def protocol_map(raw: np.ndarray | Sequence[np.ndarray], size: int = RESIZE, norm: str = "minmax") -> np.ndarray:
    """A raw map as the CVPR 2020 protocol scores it: bicubic resize to ``size`` x ``size``, then
    min-max normalization (a constant or non-finite map becomes zeros); ``norm="positive"`` takes
    the positive part over the max instead. float64 in [0, 1]. Several views' raw maps (a list):
    each resized, then averaged, then read."""
    import cv2

    from camloc.readings import normalize_map

    views = [raw] if isinstance(raw, np.ndarray) else list(raw)
    ups = [cv2.resize(np.asarray(r, np.float32), (size, size), interpolation=cv2.INTER_CUBIC) for r in views]
    up = ups[0] if len(ups) == 1 else np.mean(ups, axis=0)
    return normalize_map(up, norm).astype(np.float64)


@dataclass(frozen=True)
class Scoring:
    """What :func:`score` computes and :class:`Tally` counts.

    ``box_threshold``: the paper's rule (``None``: no paper box, no top-k / GT-known counts);
    ``loc_ks``: the k of the top-k localization errors; ``contours``: per contour rule (``True``
    all contours, ``False`` the largest), the IoU thresholds in % of its BoxAcc; ``norm``: how a
    signed raw map is read (:data:`camloc.readings.NORMS`).
    """

    box_threshold: float | None = 0.2
    loc_ks: tuple[int, ...] = (1,)
    contours: tuple[tuple[bool, tuple[int, ...]], ...] = ((True, (30, 50, 70)), (False, (50,)))
    threshold_step: float = 0.01
    norm: str = "minmax"

    @property
    def thresholds(self) -> np.ndarray:
        return cam_thresholds(self.threshold_step)


@dataclass
class Outcome:
    """One sample's scoring: ``protocol`` the 224x224 map in [0, 1]; ``gt`` its boxes at 224x224
    (empty without boxes); ``ious`` per contour rule, the best IoU at each CAM threshold;
    ``box`` the paper's box in image coordinates (``None``: none found or not asked for);
    ``mask`` the PxAP ground truth (1 / 0 / 255) of a sample with masks."""

    protocol: np.ndarray
    gt: list[Box]
    ious: dict[bool, np.ndarray]
    box: Box | None = None
    mask: np.ndarray | None = None


def score(sample: Sample, scoring: Scoring, raw: np.ndarray | None = None, *, protocol: np.ndarray | None = None,
          image_size: tuple[int, int] | None = None, full_size: bool = False) -> Outcome:
    """Score one sample's map: ``raw`` (feature resolution, or at image size with ``full_size``),
    or the protocol's 224x224 map itself (``protocol``, e.g. a saved map; no paper box then).

    ``image_size = (width, height)`` is the image the raw map is upsampled to for the paper's box,
    and the size the boxes are scaled from when ``sample.size`` is ``None``.
    """
    if (raw is None) == (protocol is None):
        raise ValueError("score takes a raw map or a protocol map, one of them")
    pm = protocol_map(raw, norm=scoring.norm) if protocol is None else protocol
    size = sample.size or image_size
    out = Outcome(pm, [], {})
    rules = tuple(rule for rule, _ in scoring.contours)
    if sample.boxes and (rules or scoring.box_threshold is not None):
        if size is None:
            raise ValueError(f"{sample.image_id}: no image size to scale its boxes to {RESIZE}x{RESIZE}")
        out.gt = [resize_box(b, size) for b in sample.boxes]
        if rules:
            out.ious = best_ious(pm, np.asarray(out.gt), scoring.thresholds, rules)  # one sweep for every rule
        if scoring.box_threshold is not None and raw is not None:
            out.box = _paper_box(raw, image_size or size, scoring, full_size)
    if sample.masks or sample.mask:
        out.mask = ground_truth(sample.masks or [sample.mask], sample.ignore)
    return out


def _paper_box(raw: np.ndarray, size: tuple[int, int], scoring: Scoring, full_size: bool) -> Box | None:
    """The paper's box: a map already at image size (ten-crop) thresholded as it is; a raw map by
    ``localize``'s own rule (:func:`camloc.boxes.paper_boxes`: the same box grid, the same whole-image
    box for a map flat at image resolution), so both commands count the same hits."""
    from camloc.boxes import boxes_from_map, paper_boxes

    if full_size:
        found = boxes_from_map(raw, scoring.box_threshold, largest_only=True, norm=scoring.norm)
    else:
        found = paper_boxes(raw, size, scoring.box_threshold, scoring.norm)[0]
    return found[0] if found else None


class Tally:
    """The evaluators an outcome is counted into: the paper's top-k / GT-known localization
    (with a ``box_threshold``), a BoxAcc evaluator per contour rule, and PxAP (``masks``)."""

    def __init__(self, scoring: Scoring, masks: bool = False) -> None:
        self.scoring = scoring
        self.loc = None
        if scoring.box_threshold is not None:
            from camloc.metrics.ilsvrc import IlsvrcLocEvaluator

            self.loc = IlsvrcLocEvaluator(scoring.loc_ks)
        self.boxacc = {rule: MaxBoxAccEvaluator(d, scoring.threshold_step, multi_contour=rule)
                       for rule, d in scoring.contours}
        self.pxap = PxAPEvaluator(scoring.threshold_step) if masks else None

    @property
    def evaluators(self) -> list[Any]:
        return [e for e in (self.loc, *self.boxacc.values(), self.pxap) if e is not None]

    def add(self, sample: Sample, out: Outcome, top: Any = ()) -> None:
        """Count one outcome; ``top`` are the predicted classes, best first (for top-k errors:
        right when the class is right and the paper's box hits)."""
        if out.gt:
            if self.loc is not None:
                preds = [(int(c), out.box if int(c) == sample.label else None) for c in top]
                self.loc.accumulate([preds], [sample.label], [sample.boxes], [out.box])
            for rule, ev in self.boxacc.items():
                ev.accumulate_ious(out.ious[rule])
        if self.pxap is not None and out.mask is not None:
            self.pxap.accumulate([out.protocol], [out.mask])

    def state(self) -> list[dict[str, np.ndarray]]:
        return [e.state() for e in self.evaluators]

    def merge(self, states: list[dict[str, np.ndarray]]) -> None:
        for ev, st in zip(self.evaluators, states, strict=True):
            ev.merge(st)

    def all_reduce(self) -> None:
        """Sum every evaluator over the processes of the joined ``torch.distributed`` group."""
        for ev in self.evaluators:
            ev.all_reduce()


def tally_chunk(scoring: Scoring, masks: bool, items: list[tuple[Sample, np.ndarray, Any]]) -> list[dict]:
    """Score ``(sample, raw map, top classes)`` items into a fresh :class:`Tally`; its state
    comes back (for :func:`camloc.scoring.parallel.Pool.map_merge`)."""
    tally = Tally(scoring, masks)
    for sample, raw, top in items:
        tally.add(sample, score(sample, scoring, raw), top)
    return tally.state()
