"""Every localization switch on one split with boxes, in one pass: scales, flip, negative-weight
clamping and the map readings, each combination scored with the paper's metrics and the
CVPR 2020 protocol's.

The views (each scale, each mirrored when flip is in the grid) run once per image through the
inference pipeline (:func:`camloc.pipeline.views.iter_views`); every combination is a subset of those views,
fused (:mod:`camloc.pipeline.views`), and read in every way asked for. So a grid of 4 readings x 2 clampings x
2 flips x ``s`` scales costs ``2 s`` forward passes per image, not ``16 s``.

Per combination:

- ``top1_loc``, ``top5_loc``, ``gt_known``: the paper's box as ``localize`` writes it with these
  views (the true class's map fused on localize's box grid, :func:`camloc.pipeline.views.fused_maps`,
  then :func:`camloc.boxes.paper_boxes` with the reading and ``box_threshold``), IoU >= 0.5, with
  the fused scores' top-k;
- ``MaxBoxAcc`` (largest contour, IoU 0.5) with its best threshold, and ``MaxBoxAccV2`` (all
  contours, IoU 0.3/0.5/0.7): the protocol's map of the views (:func:`camloc.scoring.protocol_map`:
  each view's raw map resized bicubically to 224 x 224, averaged, then read by the combination's
  normalization).

Every combination is counted by its own :class:`camloc.scoring.Tally` from
:func:`camloc.scoring.score`'s outcome, as ``camloc evaluate`` counts; so a row means what an
evaluation row means.
- ``ms_per_image``: the wall time per image of ``localize`` itself with these views (top-5,
  minmax, no figures), measured in a separate run per view set after the grid pass (so the
  disk cache is warm for every set); ``box_ms``: the reading's own fusion and box time per image,
  measured in the grid pass (what the readings and clamping add or save).

With another map ``method`` than CAM (:mod:`camloc.methods`, ``camloc ablate --method NAME``)
each scale's view runs the method on the true class (one pipeline per scale, PyTorch), the
scales and readings make the grid as for CAM, and the two switches that read CAM's features
drop out: the mirror (the pipeline mirrors CAM's features, not a method's input) and
negative-weight clamping (CAM's classifier weights). ``ms_per_image`` is then measured for a
single scale only (localize's TTA fuses CAM maps).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

import cv2
import numpy as np

from camloc.boxes import BOX_CAP, box_grid, paper_boxes
from camloc.cam import class_maps, map_weight
from camloc.readings import NORMS, check_norm
from camloc.data.base import Split
from camloc.models.net import CamNet
from camloc.pipeline.views import TTA, fused_maps, iter_views
from camloc.scoring import Scoring, Tally, protocol_map, score

COLUMNS = ("scales", "flip", "clamp", "norm", "top1_loc", "top5_loc", "gt_known", "MaxBoxAcc", "MaxBoxAcc_tau",
           "MaxBoxAccV2", "ms_per_image", "box_ms")


@dataclass(frozen=True)
class Combo:
    """One combination of switches: the views' scales, the mirror, clamping, the reading."""

    scales: tuple[int, ...]
    flip: bool
    clamp: bool
    norm: str


def scale_sets(scales: Sequence[int], all_subsets: bool = False) -> list[tuple[int, ...]]:
    """Each scale alone, then (with several) every larger subset when ``all_subsets``, else all
    of them together."""
    scales = tuple(scales)
    if len(scales) <= 1:
        return [scales]
    out = [(s,) for s in scales]
    sizes = range(2, len(scales) + 1) if all_subsets else [len(scales)]
    for n in sizes:
        out += list(combinations(scales, n))
    return out


def run_grid(net: CamNet, split: Split, scales: Sequence[int] = (256,), flips: Sequence[bool] = (False, True),
             clamps: Sequence[bool] = (False, True), norms: Sequence[str] = NORMS, box_threshold: float = 0.2,
             threshold_step: float = 0.01, all_subsets: bool = False, backend: Any = "auto", batch_size: int = 16,
             workers: int | None = None, progress: bool | None = None,
             method: Any = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Score every combination of ``scale_sets(scales) x flips x clamps x norms`` on the samples
    of ``split`` that have boxes. Returns ``(rows, skipped)``: one row per combination (keys
    :data:`COLUMNS`, plus ``num_images``) and the one-line reasons of the images that could not
    be read. ``method``: a map method instead of CAM (flips and clamps then drop to ``(False,)``).
    ``num_nonfinite_maps``: images with a NaN or infinite map in some view (no box there: a miss)."""
    from camloc.pipeline.backends import make_backend
    from camloc.pipeline.run import Job, top_classes

    for n in norms:
        check_norm(n)
    if not 0.0 <= box_threshold < 1.0:
        raise ValueError(f"box threshold must be in [0, 1), got {box_threshold}")
    samples = [s for s in split.samples if s.boxes]
    if not samples:
        raise ValueError(f"split {split.name or '?'} has no image with boxes")
    bad = next((s for s in samples if not 0 <= s.label < net.num_classes), None)
    if bad is not None:
        raise ValueError(f"{bad.image_id}: class index {bad.label} is out of range for a model with "
                         f"{net.num_classes} classes")
    if method is not None:
        flips, clamps = (False,), (False,)
    tta = TTA(tuple(int(s) for s in scales), flip=any(flips))
    views = tta.views()
    groups = [(ss, f) for ss in scale_sets(tta.scales, all_subsets) for f in dict.fromkeys(flips)]
    members = {g: [i for i, (s, m) in enumerate(views) if s in g[0] and (g[1] or not m)] for g in groups}
    weights = {c: map_weight(net, c) if method is None else None for c in dict.fromkeys(clamps)}
    combos = [Combo(ss, f, c, n) for (ss, f) in groups for c in weights for n in norms]
    ks = (1, 5) if net.num_classes >= 5 else (1,)
    scorings = {n: Scoring(box_threshold, ks, ((True, (30, 50, 70)), (False, (50,))), threshold_step, n) for n in norms}
    tallies = {k: Tally(scorings[k.norm]) for k in combos}
    spent = {k: 0.0 for k in combos}
    skipped: list[str] = []
    shared = make_backend(net, backend) if isinstance(backend, str) else backend
    jobs = (Job(s.path, i, s.path, tag=s, classes=(s.label,) if method is not None else ()) for i, s in enumerate(samples))
    nonfinite = 0
    stream = (iter_views(net, jobs, tta, shared, batch_size, workers, progress=progress, total=len(samples)) if method is None
              else iter_method_views(net, jobs, tta.scales, method, shared, batch_size, workers, progress, len(samples)))
    for results in stream:
        first = results[0]
        err = next((r.error for r in results if r.error is not None), None)
        if err is not None:
            skipped.append(err)
            continue
        s = replace(first.job.tag, mask=None, ignore=None, masks=[])  # boxes only: no mask read per combination
        grid = box_grid(first.size, BOX_CAP)  # localize's box grid
        label = np.array([s.label])
        raw = {c: [class_maps(r.features[None], w, label[None])[0, 0] if method is None else r.extra_maps[0]
                   for r in results] for c, w in weights.items()}
        nonfinite += any(not np.isfinite(m).all() for maps in raw.values() for m in maps)  # no box: a miss
        for (ss, f) in groups:
            idx = members[(ss, f)]
            logits = np.mean([results[i].logits for i in idx], axis=0)
            top = [int(c) for c in top_classes(logits[None], max(ks))[0]]
            for c, w in weights.items():
                t0 = time.perf_counter()
                fused = (fused_maps([results[i] for i in idx], w, label, grid)[0] if method is None else
                         np.mean([cv2.resize(raw[c][i], grid, interpolation=cv2.INTER_LINEAR) for i in idx], axis=0))
                t_fuse = time.perf_counter() - t0
                for n in norms:
                    k = Combo(ss, f, c, n)
                    t0 = time.perf_counter()
                    found = paper_boxes(fused, first.size, box_threshold, n, BOX_CAP)[0]
                    spent[k] += t_fuse + time.perf_counter() - t0
                    out = score(s, scorings[n], protocol=protocol_map([raw[c][i] for i in idx], norm=n),
                                image_size=first.size)
                    out.box = found[0] if found else None
                    tallies[k].add(s, out, top)
    n_read = len(samples) - len(skipped)
    if n_read == 0:
        raise ValueError(f"no image of split {split.name or '?'} could be read; first: {skipped[0]}")
    paths = [s.path for s in samples]
    wall = {g: localize_ms(net, paths, g, shared, batch_size, workers, method) for g in groups}
    rows = []
    for k in combos:
        t = tallies[k]
        lm, a, b = t.loc.compute(), t.boxacc[False].compute(), t.boxacc[True].compute()
        rows.append({
            "scales": ",".join(str(x) for x in k.scales), "flip": k.flip, "clamp": k.clamp, "norm": k.norm,
            "top1_loc": round(100 - lm["top1_loc_error"], 2),
            "top5_loc": round(100 - lm["top5_loc_error"], 2) if "top5_loc_error" in lm else None,
            "gt_known": round(lm["gt_known_loc_acc"], 2),
            "MaxBoxAcc": round(a["MaxBoxAcc@50"], 2), "MaxBoxAcc_tau": round(a["best_threshold"]["50"], 4),
            "MaxBoxAccV2": round(b["MaxBoxAccV2"], 2),
            "ms_per_image": None if wall[(k.scales, k.flip)] is None else round(wall[(k.scales, k.flip)], 1),
            "box_ms": round(spent[k] / n_read * 1000, 2), "num_images": n_read, "num_nonfinite_maps": nonfinite,
            "MaxBoxAcc_flat": bool(np.ptp(t.boxacc[False].curves()[50]) == 0),  # every threshold scores alike
        })
    return rows, skipped


def iter_method_views(net: CamNet, jobs: Any, scales: Sequence[int], method: Any, backend: Any, batch_size: int,
                      workers: int | None, progress: bool | None, total: int | None) -> Any:
    """One list of :class:`~camloc.pipeline.run.Result` per job (one per scale, in order): the
    scores and ``extra_maps`` (the maps of ``job.classes``) of ``method`` at each scale."""
    from itertools import tee

    from camloc.pipeline.run import Pipeline
    from camloc.pixels.geometry import Resize

    runs = [Pipeline(net, resize=Resize("aspect", scale), backend=backend, method=method, topk=0, batch_size=batch_size,
                     workers=workers, progress=progress if i == 0 else False,
                     desc=f"ablate ({net.name}, {getattr(method, 'name', 'method')})").run(stream, total=total)
            for i, (scale, stream) in enumerate(zip(scales, tee(jobs, len(scales))))]
    for per_scale in zip(*runs):
        yield list(per_scale)


def localize_ms(net: CamNet, paths: list[str], group: tuple[tuple[int, ...], bool], backend: Any,
                batch_size: int, workers: int | None, method: Any = None) -> float | None:
    """Wall milliseconds per image of :func:`camloc.localize.iter_localize` with the views of
    ``group`` (one scale without flip: the plain pipeline, as ``localize`` runs it); ``None`` for
    several views with a ``method`` (localize's TTA fuses CAM maps only)."""
    from camloc.localize import iter_localize
    from camloc.pixels.geometry import Resize

    scales, flip = group
    one = len(scales) == 1 and not flip
    if method is not None and not one:
        return None
    kw = {"resize": Resize("aspect", scales[0])} if one else {"tta": TTA(scales, flip)}
    if method is not None:
        kw["method"] = method
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_localize(net, paths, topk=min(5, net.num_classes), batch_size=batch_size,
                                     progress=False, backend=backend, workers=workers, **kw))
    return (time.perf_counter() - t0) / max(n, 1) * 1000


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (columns :data:`COLUMNS`)."""
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |\n" for r in rows)


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "" if v is None else str(v)
