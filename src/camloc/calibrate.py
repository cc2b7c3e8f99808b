"""A calibrated box threshold: the reading and threshold of the best MaxBoxAcc on a split with boxes,
stored beside the model, and what ``localize`` reads back.

:func:`calibrate` scores every reading of :data:`camloc.readings.NORMS` on the split with the views
``localize`` will run (its aspect scale, or its TTA), in one pass (:func:`camloc.ablation.run_grid`),
and keeps the reading and threshold ``tau`` of the best MaxBoxAcc (largest contour, IoU 0.5, the
CVPR 2020 protocol's threshold sweep); ties go to the reading listed first. ``tau`` is a fraction
of the read map, as ``localize``'s ``--threshold`` is.

Where the file lives (:func:`calibration_path`): ``<probe>.calibration.json`` beside a probe,
``<checkpoint>.calibration.json`` beside a checkpoint or weights file, else
``<cache>/calibration/<model name>.json`` (the cache of :func:`camloc.pipeline.backends.cache_root`)
for a built-in model.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from camloc.readings import NORMS, check_norm
from camloc.errors import CalibrationError

SUFFIX = ".calibration.json"
FORMAT = 1


def calibration_path(model: str | None, probe: str | None, weights: str | None, name: str) -> Path:
    """Where the calibration of this model (and probe) lives; see the module docstring."""
    for owner in (probe, weights, model):
        if owner and os.path.isfile(owner):
            return Path(owner + SUFFIX)
    from camloc.pipeline.backends import cache_root

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "model"
    return cache_root() / "calibration" / f"{safe}.json"


def calibrate(net: Any, split: Any, scales: tuple[int, ...], flip: bool = False, clamp: bool = False,
              norms: tuple[str, ...] = NORMS, **grid: Any) -> dict[str, Any]:
    """The calibration record of ``net`` on ``split``'s images with boxes, for the views
    ``scales`` (aspect geometry) and ``flip`` (see :mod:`camloc.pipeline.views`) and the clamping ``clamp``."""
    from camloc.ablation import run_grid

    rows, skipped = run_grid(net, split, scales=scales, flips=(flip,), clamps=(clamp,), norms=norms, **grid)
    together = ",".join(str(s) for s in scales)
    rows = [r for r in rows if r["scales"] == together]
    best = max(rows, key=lambda r: r["MaxBoxAcc"])  # max() keeps the first of equals: the order of norms
    return {
        "format": FORMAT,
        "model": net.name,
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


def save_calibration(record: dict[str, Any], path: str | os.PathLike) -> None:
    from camloc.io import atomic_write_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)


def load_calibration(path: str | os.PathLike) -> dict[str, Any]:
    """A calibration file, checked: ``threshold`` in [0, 1), ``norm`` a reading of
    :data:`camloc.readings.NORMS`, ``clamp_negative`` a boolean; one-line :class:`CalibrationError`
    naming the file otherwise."""
    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8") as f:
            rec = json.load(f)
    except OSError as err:
        raise CalibrationError(f"{where}: cannot read ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CalibrationError(f"{where}: not a calibration file (not JSON: {' '.join(str(err).split())})") from None
    if not isinstance(rec, dict):
        raise CalibrationError(f"{where}: not a calibration file (a JSON object is expected)")
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
