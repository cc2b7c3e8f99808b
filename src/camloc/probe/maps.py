"""CAMs and the paper's boxes of a probe's (or any net's) classes on dataset samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camloc.data.base import Sample
from camloc.errors import ProbeError
from camloc.models.net import CamNet

# --------------------------------------------------------------------------- CAM boxes


@dataclass
class CamBox:
    """The CAM box of one class on one image, in original-image pixels.

    Attributes:
        box: ``[x0, y0, x1, y1]`` inclusive, or ``None`` for a constant / non-finite map.
        peak: ``(x, y)`` of the upsampled map's maximum, or ``None`` likewise.
        size: ``(width, height)`` of the image (after cropping, if a crop was given).
    """

    box: list[int] | None
    peak: tuple[int, int] | None
    size: tuple[int, int]


@dataclass
class MapResult:
    """One image's forward pass: the raw map ``M_c`` of the asked class (feature resolution,
    float32), the image's ``(width, height)`` and all class scores ``(C,)``."""

    map: np.ndarray
    size: tuple[int, int]
    logits: np.ndarray


def cam_maps(
    net: CamNet,
    samples: Sequence[Sample],
    classes: Sequence[int],
    *,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "CAMs",
    backend: str = "auto",
) -> tuple[list[MapResult | None], list[str]]:
    """The raw CAM of class ``classes[i]`` on image ``i`` and its scores, through the inference
    pipeline (squashed to the net's input, one forward pass per batch); ``None`` for an
    unreadable image, whose one-line reason is in the second list."""
    from camloc.pixels.geometry import Resize
    from camloc.pipeline.run import Job, Pipeline

    if len(classes) != len(samples):
        raise ProbeError(f"{len(classes)} classes for {len(samples)} images")
    out: list[MapResult | None] = [None] * len(samples)
    skipped: list[str] = []
    pipe = Pipeline(net, resize=Resize("squash"), backend=backend, topk=0, batch_size=max(1, int(batch_size)),
                    progress=None if progress else False, desc=desc)
    jobs = (Job(s.path, i, s.path, classes=(int(classes[i]),)) for i, s in enumerate(samples))
    for res in pipe.run(jobs, total=len(samples)):
        if res.error is not None:
            skipped.append(res.error)
        else:
            out[res.index] = MapResult(res.extra_maps[0], res.size, res.logits)
    return out, skipped


def box_and_peak(raw: np.ndarray, size: tuple[int, int], threshold: float = 0.2, norm: str = "minmax") -> CamBox:
    """The paper's box and the peak of a raw map upsampled to ``size = (width, height)``.

    The map is upsampled bilinearly to the image, normalized (min-max, or with
    ``norm="positive"`` its positive part over its max), thresholded at ``threshold`` (of its
    max) and the bounding box of the largest connected component is kept
    (:func:`camloc.boxes.boxes_from_checked_map`); the peak is the upsampled map's argmax.
    """
    from camloc.boxes import boxes_from_checked_map, peak
    from camloc.readings import map_status, upsample

    w, h = size
    m = upsample(raw, (h, w))
    if map_status(m, norm) is not None:
        return CamBox(None, None, (w, h))
    boxes = boxes_from_checked_map(m, threshold, norm=norm)
    return CamBox(boxes[0] if boxes else None, peak(m), (w, h))


def cam_boxes(
    net: CamNet,
    samples: Sequence[Sample],
    classes: Sequence[int],
    *,
    threshold: float = 0.2,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "CAM boxes",
    norm: str = "minmax",
    backend: str = "auto",
) -> tuple[list[CamBox | None], list[str]]:
    """The paper's box (see :func:`box_and_peak`) for class ``classes[i]`` on image ``i``, one
    forward pass per batch (:func:`cam_maps`). Returns one :class:`CamBox` per sample (``None``
    for an unreadable image) and the one-line reasons for those."""
    maps, skipped = cam_maps(net, samples, classes, batch_size=batch_size, progress=progress, desc=desc,
                             backend=backend)
    return [None if m is None else box_and_peak(m.map, m.size, threshold, norm) for m in maps], skipped
