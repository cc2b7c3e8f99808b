"""How a run's records were made: the header line of ``results.jsonl``.

The first line of a ``results.jsonl`` written by ``camloc localize`` is ``{"camloc_run": {...}}``
(:data:`camloc.schema.HEADER`): the camloc version, the net (name and weights hash), its geometry
(mode and side, or the TTA views), the backend that ran the forward pass, the map method, the box
reading and threshold, the temperature of the scores and the calibration file they came from.
Every other line is one image's record. :func:`read_results` reads both back.
"""

from __future__ import annotations

import json
import os
from typing import Any

KEY = "camloc_run"


def run_header(net: Any, resize: Any, tta: Any, backend: str, method: str, norm: str, threshold: float,
               clamp_negative: bool, temperature: float, temperature_views: str | None,
               calibration: str | None, topk: int) -> dict[str, Any]:
    """The header line of a run (see the module docstring)."""
    import camloc
    from camloc.scores import model_digest, views_of

    geometry: dict[str, Any] = ({"mode": "aspect", "side": int(tta.scales[0]), "views": tta.describe()}
                                if tta is not None else
                                {"mode": resize.mode, "side": int(resize.size) if resize.mode == "aspect" else
                                 [int(v) for v in net.preprocessing.shape], "views": views_of(resize)})
    if tta is None and getattr(resize, "long_step", 0) and resize.mode == "aspect":
        geometry["long_step"] = int(resize.long_step)  # the longer side down to a multiple of it
    return {KEY: {
        "camloc_version": camloc.__version__,
        "model": net.name,
        "weights_sha256": model_digest(net),
        "num_classes": int(net.num_classes),
        "geometry": geometry,
        "backend": backend,
        "method": method,
        "norm": norm,
        "threshold": float(threshold),
        "clamp_negative": bool(clamp_negative),
        "temperature": float(temperature),
        "temperature_views": temperature_views,
        "calibration": calibration,
        "topk": int(topk),
    }}


def is_header(line: dict[str, Any]) -> bool:
    return isinstance(line, dict) and KEY in line and "image" not in line


def read_results(path: str | os.PathLike) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``(header or None, records)`` of a ``results.jsonl`` (blank lines skipped)."""
    header, records = None, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            if is_header(d):
                header = d[KEY]
            else:
                records.append(d)
    return header, records
