"""Calibration files: what ``localize`` reads beside a model to make its output mean what it says.

One file holds, for one model (its name and weights hash, :func:`model_digest`) and the views it was
made for:

- the **box reading and threshold** (:func:`calibrate`): every reading of
  :data:`camloc.readings.NORMS` scored on a split with boxes with the views ``localize`` will run
  (its aspect scale, or its TTA), in one pass (:func:`camloc.ablation.run_grid`); the reading and
  threshold ``tau`` of the best MaxBoxAcc (largest contour, IoU 0.5, the CVPR 2020 protocol's
  threshold sweep) are kept, ties going to the reading listed first. A split where the best is 0, or
  where every threshold scores alike, is refused (:class:`CalibrationError`): nothing was learnt.
- the **temperature** of the scores (:func:`fit_scores`, :mod:`camloc.scores`): one ``T`` fitted by
  minimizing the log loss on labelled photos; a record's ``score`` is then ``softmax(logits / T)``.

Where a file applies: only where named (``localize --calibration FILE``) or beside the user's own
checkpoint, weights or probe file (``<file>.calibration.json``, :func:`calibration_path`). Nothing
in a cache changes a default. The embedded nets ship their temperatures (``temperatures.json`` in
the package, fitted on 500 real ImageNet photos, :func:`camloc.scores.shipped_temperature`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from camloc.readings import NORMS, check_norm
from camloc.errors import CalibrationError, one_line
from camloc.scores import model_digest, views_of

SUFFIX = ".calibration.json"
FORMAT = 2


def calibration_path(model: str | None, probe: str | None, weights: str | None) -> Path | None:
    """The calibration file beside the user's own probe, weights or checkpoint file
    (``<file>.calibration.json``), or ``None`` for a built-in model (its calibration applies only
    when named)."""
    for owner in (probe, weights, model):
        if owner and os.path.isfile(owner):
            return Path(owner + SUFFIX)
    return None


def fit_scores(net: Any, items: list[tuple[str, int]], resize: Any = None, tta: Any = None, backend: Any = "auto",
               batch_size: int = 16, workers: int | None = None, progress: bool | None = None) -> dict[str, Any]:
    """The temperature of ``net``'s scores with these views, fitted on ``items`` (``(image path,
    class index)``): ``{"temperature", "views", "scores_fit": {num_images, top1, top5, ece_before,
    ece_after, log_loss_before, log_loss_after}}`` (measured on the photos fitted on; see
    ``benchmarks/bench_calibration.py`` for figures on photos not fitted on)."""
    from camloc import scores

    logits, labels, bad = collect_logits(net, items, resize, tta, backend, batch_size, workers, progress)
    if len(labels) == 0:
        raise CalibrationError(f"no labelled photo could be read; first: {bad[0] if bad else '-'}")
    try:
        t = scores.fit_temperature(logits, labels)
    except ValueError as err:
        raise CalibrationError(str(err)) from None
    fit = {k: round(v, 6) if isinstance(v, float) else v for k, v in scores.report(logits, labels, t).items()}
    fit["num_skipped"] = len(bad)
    return {"temperature": round(t, 6), "views": views_of(resize, tta), "scores_fit": fit}


def collect_logits(net: Any, items: list[tuple[str, int]], resize: Any = None, tta: Any = None,
                   backend: Any = "auto", batch_size: int = 16, workers: int | None = None,
                   progress: bool | None = None):
    """``(logits (N, C), labels (N,), errors)`` of the readable photos of ``items`` with these views
    (TTA's fused logits when ``tta`` is given): one forward pass per batch and view."""
    import numpy as np

    from camloc.pipeline.run import Job
    from camloc.tta import TTA, fused_logits, iter_views

    bad_label = next(((p, c) for p, c in items if not 0 <= c < net.num_classes), None)
    if bad_label is not None:
        raise CalibrationError(f"{bad_label[0]}: class index {bad_label[1]} is out of range for {net.name} "
                               f"({net.num_classes} classes)")
    if tta is None:
        if resize is not None and resize.mode != "aspect":
            return _squash_logits(net, items, resize, backend, batch_size, workers, progress)
        tta = TTA((resize.size,), False)
    jobs = [Job(p, i, p, tag=c) for i, (p, c) in enumerate(items)]
    rows, labels, bad = [], [], []
    for views in iter_views(net, jobs, tta, backend, batch_size, workers, progress=progress, total=len(jobs)):
        err = next((v.error for v in views if v.error is not None), None)
        if err is not None:
            bad.append(err)
            continue
        rows.append(fused_logits(views))
        labels.append(views[0].job.tag)
    k = net.num_classes
    return (np.asarray(rows, dtype=np.float64).reshape(-1, k), np.asarray(labels, dtype=np.int64), bad)


def _squash_logits(net, items, resize, backend, batch_size, workers, progress):
    import numpy as np

    from camloc.pipeline.run import Job, Pipeline

    pipe = Pipeline(net, resize=resize, backend=backend, topk=0, batch_size=batch_size, workers=workers,
                    progress=progress, desc=f"scores ({net.name})")
    rows, labels, bad = [], [], []
    for res in pipe.run([Job(p, i, p, tag=c) for i, (p, c) in enumerate(items)], total=len(items)):
        if res.error is not None:
            bad.append(res.error)
            continue
        rows.append(res.logits)
        labels.append(res.job.tag)
    return (np.asarray(rows, dtype=np.float64).reshape(-1, net.num_classes), np.asarray(labels, dtype=np.int64), bad)


def find_calibration(net: Any, views: str, model: str | None, probe: str | None, weights: str | None,
                     named: str | None = None, force: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    """``(calibration, its file)`` that applies to a run of ``net`` with ``views``: ``named``
    (``--calibration FILE``; ``"none"``: nothing), else the file beside the user's own probe,
    weights or checkpoint when there is one, else ``(None, None)``: a calibration is never found in
    a cache or anywhere else. The file is checked against the model and views (see
    :func:`load_calibration`, ``force``)."""
    if named == "none":
        return None, None
    path = named or calibration_path(model, probe, weights)
    if named is None and (path is None or not os.path.exists(path)):
        return None, None
    return load_calibration(path, net, views, force=force), str(path)


def calibrate(net: Any, split: Any, scales: tuple[int, ...], flip: bool = False, clamp: bool = False,
              norms: tuple[str, ...] = NORMS, **grid: Any) -> dict[str, Any]:
    """The calibration record of ``net`` on ``split``'s images with boxes, for the views
    ``scales`` (aspect geometry) and ``flip`` (see :mod:`camloc.pipeline.views`) and the clamping ``clamp``."""
    from camloc.ablation import run_grid

    rows, skipped = run_grid(net, split, scales=scales, flips=(flip,), clamps=(clamp,), norms=norms, **grid)
    together = ",".join(str(s) for s in scales)
    rows = [r for r in rows if r["scales"] == together]
    best = max(rows, key=lambda r: r["MaxBoxAcc"])  # max() keeps the first of equals: the order of norms
    check_box_fit(rows, best)
    return {
        "format": FORMAT,
        "model": net.name,
        "weights_sha256": model_digest(net),
        "threshold": float(best["MaxBoxAcc_tau"]),
        "norm": best["norm"],
        "clamp_negative": bool(clamp),
        "views": ("flip," if flip else "") + "scales=" + together,
        "MaxBoxAcc": best["MaxBoxAcc"],
        "by_norm": {r["norm"]: {"MaxBoxAcc": r["MaxBoxAcc"], "threshold": r["MaxBoxAcc_tau"],
                                "gt_known_at_0.2": r["gt_known"]} for r in rows},
        "num_images": best["num_images"],
        "num_skipped": len(skipped),
    }


def check_box_fit(rows: list[dict[str, Any]], best: dict[str, Any]) -> None:
    """Refuse a box calibration that learnt nothing: a best MaxBoxAcc of 0 (no box of the split is
    found at any threshold) or, for every reading, the same score at every threshold (the chosen
    threshold would be the sweep's first by default, not by evidence)."""
    if not best["MaxBoxAcc"] > 0:
        raise CalibrationError(f"not stored: MaxBoxAcc is 0 for every reading and threshold on {best['num_images']} "
                               "images (no box matched at IoU 0.5); the split or the model does not fit")
    if all(r.get("MaxBoxAcc_flat", False) for r in rows):
        raise CalibrationError("not stored: every threshold scores the same MaxBoxAcc for every reading, so no "
                               "threshold is better than another on this split")


def save_calibration(record: dict[str, Any], path: str | os.PathLike) -> None:
    from camloc.io import atomic_write_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)


def load_calibration(path: str | os.PathLike, net: Any = None, views: str | None = None,
                     force: bool = False) -> dict[str, Any]:
    """A calibration file, checked: format :data:`FORMAT`; ``threshold`` in [0, 1) and ``norm`` a
    reading of :data:`camloc.readings.NORMS` when it has a box part, ``temperature`` positive when it
    has a score part; with ``net``, made for that model (name and weights hash) and, with ``views``,
    for those views, unless ``force``. One-line :class:`CalibrationError` naming the file otherwise."""
    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8") as f:
            rec = json.load(f)
    except OSError as err:
        raise CalibrationError(f"{where}: cannot read ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CalibrationError(f"{where}: not a calibration file (not JSON: {one_line(err)})") from None
    if not isinstance(rec, dict):
        raise CalibrationError(f"{where}: not a calibration file (a JSON object is expected)")
    if rec.get("format") != FORMAT:
        raise CalibrationError(f"{where}: calibration format {rec.get('format')!r}, this camloc reads format {FORMAT} "
                               "(run camloc calibrate again)")
    has_box, has_t = "threshold" in rec or "norm" in rec, "temperature" in rec
    if not (has_box or has_t):
        raise CalibrationError(f"{where}: holds neither a box threshold nor a temperature")
    if has_t:
        temp = rec["temperature"]
        if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not (math.isfinite(temp) and temp > 0):
            raise CalibrationError(f"{where}: temperature must be a positive number, got {temp!r}")
    if net is not None and not force:
        _check_owner(rec, where, net, views)
    if not has_box:
        return rec
    t = rec.get("threshold")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and 0.0 <= t < 1.0):
        raise CalibrationError(f"{where}: threshold must be a number in [0, 1), got {t!r}")
    try:
        check_norm(rec.get("norm"))  # type: ignore[arg-type]
    except ValueError as err:
        raise CalibrationError(f"{where}: {err}") from None
    if not isinstance(rec.get("clamp_negative", False), bool):
        raise CalibrationError(f"{where}: clamp_negative must be true or false, got {rec.get('clamp_negative')!r}")
    return rec


def _check_owner(rec: dict[str, Any], where: str, net: Any, views: str | None) -> None:
    """The model and views a calibration was made for against the ones running (one line each)."""
    hint = " (--calibration-force applies it anyway)"
    if rec.get("model") != net.name:
        raise CalibrationError(f"{where}: made for model {rec.get('model')!r}, not {net.name!r}{hint}")
    digest = rec.get("weights_sha256")
    if digest != model_digest(net):
        raise CalibrationError(f"{where}: made for other weights of {net.name!r} (weights hash differs){hint}")
    if views is not None and rec.get("views") not in (None, views):
        raise CalibrationError(f"{where}: made for views {rec.get('views')}, this run uses {views}{hint}")


def labelled_photos(data: str, split: str = "val", fmt: str = "auto", image_root: str | None = None, strict: bool = False,
                    class_names: list[str] | None = None) -> tuple[list[tuple[str, int]], int]:
    """``([(image path, class index)], skipped metadata lines)`` of ``data``: a folder with
    ``labels.csv`` (``file,class_index``; images in ``images/`` or beside it), else any dataset
    ``open_dataset`` reads; when every class name of that dataset is one of ``class_names`` (the
    model's), its labels are the model's indices of those names (class folders are numbered in
    name order, the model's classes are not)."""
    import csv

    from camloc.data import open_dataset

    table = os.path.join(data, "labels.csv")
    if os.path.isfile(table):
        folder = os.path.join(data, "images")
        folder = folder if os.path.isdir(folder) else data
        items = []
        with open(table, newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                try:
                    items.append((os.path.join(folder, row["file"]), int(row["class_index"])))
                except (KeyError, TypeError, ValueError):
                    raise CalibrationError(f"{table}:{n}: expected file,class_index columns with an integer "
                                           "class index") from None
        return items, 0
    found = open_dataset(data, split, fmt, image_root=image_root, strict=strict)
    names = list(getattr(found, "classes", None) or [])
    if class_names and names and set(names) <= set(class_names):
        index = {n: i for i, n in enumerate(class_names)}
        return [(s.path, index[names[s.label]]) for s in found.samples], len(found.skipped)
    return [(s.path, s.label) for s in found.samples], len(found.skipped)


def merged_with_stored(rec: dict[str, Any], path: str | os.PathLike, net: Any, views: str) -> dict[str, Any]:
    """``rec`` with the other part of the file already at ``path`` when that file was made for the
    same model and views (the box part kept beside a new temperature, or the reverse)."""
    if not os.path.isfile(path):
        return rec
    try:
        old = load_calibration(path, net, views)
    except CalibrationError:
        return rec
    keep = ("temperature", "scores_fit") if "threshold" in rec else \
        ("threshold", "norm", "clamp_negative", "MaxBoxAcc", "by_norm", "num_images", "num_skipped", "data", "split")
    return {**{k: old[k] for k in keep if k in old}, **rec}
