"""Class-specific units: which feature channels make a class's map, and what they fire on.

A class activation map is a weighted sum of the last features, ``M_c = sum_k w_k^c f_k``, so the
channels (units) with the largest weights ``w_k^c`` are the parts a class is recognized by. The
paper shows, for a class, its top-weighted units and, for each, the image regions that activate
it most. Here:

- :func:`class_units` ranks the units of a class by weight (positive weights only: a unit with a
  negative weight argues against the class); :func:`contributing_units` ranks them instead by
  their mean share ``w_k^c * pool(f_k)`` of the class score on given images (which units make
  *these* images score as the class);
- :func:`unit_hits` runs the images through the net (the inference pipeline, squashed to the
  net's input, one forward pass per batch) and keeps, for every chosen unit, the images where it
  peaks highest, with the peak's place and the box of the unit's map (the paper's 20 % rule on
  its positive part); memory holds the pipeline's chunks and ``per_unit`` small maps per unit;
- :func:`camloc.viz.grids.units_figure` draws one row per unit, its best images with the unit's map.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camloc.boxes import boxes_from_map, peak
from camloc.cam import map_weight
from camloc.readings import upsample
from camloc.models.net import CamNet


@dataclass
class Hit:
    """One image where a unit fires: its peak and mean activation, the peak in image pixels
    ``(x, y)``, the box of the unit's map (image pixels, inclusive), and the raw map at feature
    resolution. ``weight * mean`` is the unit's share of the class score on the image."""

    image: str
    peak: float
    mean: float
    point: tuple[int, int]
    box: list[int] | None
    size: tuple[int, int]
    map: np.ndarray = field(repr=False)
    order: int = field(default=0, repr=False)  # position in the input, for stable ties

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "peak": round(self.peak, 6), "mean": round(self.mean, 6),
                "point": list(self.point), "box": self.box,
                "width": self.size[0], "height": self.size[1]}


@dataclass
class Unit:
    """A feature channel, its weight for the class, and its best images (highest peak first)."""

    index: int
    weight: float
    hits: list[Hit] = field(default_factory=list)
    contribution: float | None = None  # mean w_k * pool(f_k) over the images, when ranked so

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"unit": self.index, "weight": round(self.weight, 6)}
        if self.contribution is not None:
            d["contribution"] = round(self.contribution, 6)
        d["hits"] = [h.to_dict() for h in self.hits]
        return d


def class_index(net: CamNet, name: str | int, where: str = "class") -> int:
    """A class of ``net`` by label or index: :func:`camloc.classes.resolve_class` (an exact label
    first, then ``#N``); one-line :class:`camloc.classes.ClassError` naming the model otherwise."""
    from camloc.classes import model_label, resolve_class

    return resolve_class(name, net.class_names, model_label(net), where)


def class_units(net: CamNet, cls: int, count: int = 6) -> list[Unit]:
    """The ``count`` units with the largest positive weight for class ``cls``, largest first
    (ties: the lower index first)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    w = map_weight(net)[cls]
    order = np.lexsort((np.arange(len(w)), -w))  # by weight descending, then index
    return [Unit(int(k), float(w[k])) for k in order[:count] if w[k] > 0]


def _results(net: CamNet, inputs: Iterable[str | os.PathLike], keep: str, batch_size: int, progress: bool | None,
             desc: str, skipped: list[str], backend: str) -> Iterator[Any]:
    """The pipeline's results (with ``keep``: ``"pooled"`` or ``"features"``) for the readable
    ``inputs`` (a list or a stream), squashed to the net's input, one forward pass per batch;
    unreadable images are listed in ``skipped`` (one line each) and left out."""
    from camloc.pixels.geometry import Resize
    from camloc.pipeline.run import Pipeline

    pipe = Pipeline(net, resize=Resize("squash"), backend=backend, topk=0, batch_size=max(1, int(batch_size)),
                    keep=keep, progress=progress, desc=f"{desc} ({net.name})")
    for res in pipe.run(inputs, total=len(inputs) if isinstance(inputs, Sequence) else None):
        if res.error is not None:
            skipped.append(res.error)
        else:
            yield res


def contributing_units(net: CamNet, cls: int, inputs: Iterable[str | os.PathLike], count: int = 6,
                       batch_size: int = 16, progress: bool | None = None,
                       backend: str = "auto") -> tuple[list[Unit], list[str]]:
    """The ``count`` units with the largest positive mean contribution ``w_k^c * pool(f_k)`` to
    class ``cls``'s score over ``inputs`` (the class score is their sum plus the bias, exactly,
    for a GAP or GMP head), largest first; one forward pass per batch. Returns the units and
    one-line reasons for unreadable images (skipped)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    w = map_weight(net)[cls]
    total = np.zeros(len(w), np.float64)
    n, skipped = 0, []
    for res in _results(net, inputs, "pooled", batch_size, progress, "contributions", skipped, backend):
        pooled = res.pooled.astype(np.float64)
        if not np.isfinite(pooled).all():
            skipped.append(f"{res.name}: non-finite features")
            continue
        total += pooled
        n += 1
    if n == 0:
        raise ValueError("no image could be read to rank the units by contribution")
    share = w * total / n
    order = np.lexsort((np.arange(len(w)), -share))
    return [Unit(int(k), float(w[k]), contribution=float(share[k])) for k in order[:count] if share[k] > 0], skipped


def unit_hits(net: CamNet, inputs: Iterable[str | os.PathLike], units: Sequence[Unit], per_unit: int = 5,
              batch_size: int = 16, threshold: float = 0.2, progress: bool | None = None,
              backend: str = "auto") -> list[str]:
    """Fill each unit's ``hits`` with its ``per_unit`` best images of ``inputs``: highest peak
    activation first, then (bounded activations such as ReLU6 saturate, so peaks tie) highest
    mean activation, then input order. Returns one-line reasons for unreadable images, which are
    skipped."""
    if per_unit < 1:
        raise ValueError(f"per_unit must be at least 1, got {per_unit}")
    if not units:
        return []
    index = [u.index for u in units]
    skipped: list[str] = []

    def trim() -> None:  # keep only the best per_unit: memory stays flat
        for unit in units:
            unit.hits.sort(key=lambda h: (-h.peak, -h.mean, h.order))
            del unit.hits[per_unit:]

    for n, res in enumerate(_results(net, inputs, "features", batch_size, progress, "units", skipped, backend), 1):
        acts = res.features[index]  # (U, h, w)
        for unit, a in zip(units, acts):
            if not np.isfinite(a).all():
                skipped.append(f"{res.name}: non-finite activations of unit {unit.index}")
                continue
            unit.hits.append(_hit(res.name, a, res.size, threshold, order=res.index))
        if n % max(1, batch_size) == 0:
            trim()
    trim()
    return skipped


def _hit(name: str, a: np.ndarray, size: tuple[int, int], threshold: float, order: int) -> Hit:
    w, h = size
    up = upsample(a, (h, w))
    found = boxes_from_map(up, threshold, norm="positive")
    return Hit(name, float(a.max()), float(a.mean()), peak(up), found[0] if found else None, (w, h), a.copy(), order)
