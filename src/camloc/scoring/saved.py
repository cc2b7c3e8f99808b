"""Score maps written by any tool (``<maps>/<image_id>.npy``, 224x224 in [0, 1]) against CVPR
2020 WSOL metadata: MaxBoxAcc(V2) for a box split, PxAP for a mask split. The library side of
``camloc evaluate-maps``; torch-free."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from camloc.data.base import Sample
from camloc.errors import one_line
from camloc.metrics.maxboxacc import RESIZE, check_scoremap
from camloc.scoring.outcome import Scoring, Tally, score
from camloc.scoring.parallel import Pool


@dataclass
class MapsResult:
    """``metrics`` (the evaluator's numbers, the skipped metadata lines), and for a box split
    the CAM ``thresholds`` and the BoxAcc ``curves`` (percent) for the figure."""

    metrics: dict[str, Any]
    thresholds: list[float] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)


def map_path(maps: str, image_id: str, where: str) -> str:
    """``<maps>/<image_id>.npy``; an id that is absolute or climbs out with ``..`` is refused
    (one line naming the metadata line): metadata must not make camloc read files elsewhere.
    The check is on the names; links placed inside ``maps`` by its owner are followed."""
    root = os.path.abspath(maps)
    inside = os.path.abspath(os.path.join(root, image_id + ".npy"))
    if os.path.isabs(image_id) or "\0" in image_id or os.path.commonpath([root, inside]) != root:
        raise ValueError(f"{where}: image id {image_id!r} names a file outside the maps folder {maps}")
    return os.path.join(maps, image_id + ".npy")


def load_map(maps: str, image_id: str, where: str) -> np.ndarray:
    """``<maps>/<image_id>.npy`` as a checked float64 224x224 map; one-line errors naming the file."""
    path = map_path(maps, image_id, where)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no score map for image id {image_id!r} ({where})")
    try:
        m = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises several kinds for a bad file
        raise ValueError(f"{path}: cannot read score map ({one_line(err, 120)})") from None
    m = check_scoremap(m, path)
    if m.shape != (RESIZE, RESIZE):
        raise ValueError(f"{path}: score map is {m.shape[0]}x{m.shape[1]}, the protocol scores {RESIZE}x{RESIZE} maps")
    return m


def evaluate_maps(maps: str, metadata: str, mask_root: str | None = None, iou: tuple[int, ...] = (30, 50, 70),
                  threshold_step: float = 0.01, multi_contour: bool = True, workers: int = 0, strict: bool = False,
                  progress: bool | None = None) -> MapsResult:
    """Score every map of ``maps`` against the split in ``metadata``.

    A split with masks is scored with PxAP, else with BoxAcc at the IoU thresholds ``iou`` (in %)
    on all contours (MaxBoxAccV2) or the largest (``multi_contour=False``). ``workers``: scoring
    processes (0: one per CPU core from 1,000 maps on, else 1); the numbers do not depend on it.
    Metadata lines the reader cannot use are skipped (``strict``: the first one is an error); a
    missing or bad map is an error naming its file.
    """
    from tqdm.auto import tqdm

    from camloc.data.wsol import read_wsol

    if not os.path.isdir(maps):
        raise ValueError(f"{maps}: no such folder of maps")
    if workers < 0:
        raise ValueError(f"--workers must be 0 (auto) or more, got {workers}")
    split = read_wsol(metadata, mask_root=mask_root, strict=strict)
    masks = any(s.masks or s.mask for s in split.samples)
    scoring = Scoring(box_threshold=None, contours=() if masks else ((multi_contour, tuple(iou)),),
                      threshold_step=threshold_step)
    tally = Tally(scoring, masks)
    ev = tally.pxap if masks else tally.boxacc[multi_contour]
    samples = list(split.samples)
    n = workers or ((os.cpu_count() or 1) if len(samples) >= 1000 else 1)
    bar = tqdm(total=len(samples), desc="evaluate-maps", unit="map", disable=None if progress is None else not progress)
    try:
        with Pool(n) as pool:
            pool.map_merge(partial(_score_files, scoring, masks, maps, metadata, _id_lines(metadata)), samples,
                           tally.merge, chunk=32, progress=bar)
    finally:
        bar.close()
    metrics = {"maps": maps, "metadata": metadata, **ev.compute(),
               "num_skipped": len(split.skipped), "skipped": list(split.skipped)}
    if masks:
        return MapsResult(metrics)
    kind = "all contours" if multi_contour else "largest contour"
    return MapsResult(metrics, ev.thresholds.tolist(), {f"IoU {d / 100:.2f}, {kind}": c.tolist() for d, c in ev.curves().items()})


def _id_lines(metadata: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    with open(os.path.join(metadata, "image_ids.txt"), encoding="utf-8") as f:
        for i, text in enumerate(f, 1):
            lines.setdefault(text.rstrip("\r\n"), i)
    return lines


def _score_files(scoring: Scoring, masks: bool, maps: str, metadata: str, lines: dict[str, int],
                 samples: list[Sample]) -> list[dict]:
    """Load and score ``samples`` into a fresh :class:`Tally`; its state comes back."""
    tally = Tally(scoring, masks)
    ids_file = os.path.join(metadata, "image_ids.txt")
    for s in samples:
        where = f"{ids_file}:{lines.get(s.image_id, '?')}"
        m = load_map(maps, s.image_id, where)
        if not masks and not s.boxes:
            raise ValueError(f"{os.path.join(metadata, 'localization.txt')}: no box for image id {s.image_id!r} ({where})")
        if not masks and s.size is None:
            raise ValueError(f"{os.path.join(metadata, 'image_sizes.txt')}: no size for image id {s.image_id!r}, "
                             "needed to scale its boxes to 224x224")
        tally.add(s, score(s, scoring, protocol=m))
    return tally.state()
