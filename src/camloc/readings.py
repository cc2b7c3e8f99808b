"""The readings of a map (its normalizations) by name: torch-free, so option checks can use them
before torch loads. The math lives in :mod:`camloc.cam` (:func:`~camloc.cam.norm_bounds`)."""

from __future__ import annotations

import math

NORMS = ("minmax", "positive", "percentile", "meanstd")
"""How a signed map is read as a fraction of its peak. Each reading is a floor ``lo`` and a top
``hi``; the read map is ``clip((m - lo) / (hi - lo), 0, 1)`` and a threshold ``t`` keeps the
pixels ``m > lo + t (hi - lo)``:

- ``"minmax"``: ``lo = min``, ``hi = max``, the published evaluation code's convention; for a
  signed CAM the cut lies below its zero;
- ``"positive"``: ``lo = 0``, ``hi = max``, the paper's wording ("20 % of the max value of the
  CAM"); negative evidence never enters a box;
- ``"percentile"`` (or ``"percentile:Q"``): ``lo`` = the map's ``Q``-th percentile (default
  :data:`PERCENTILE`, the median), ``hi = max``: the floor is the map's typical level, not its
  single lowest cell, so one strongly negative cell does not widen every box (the
  percentile-floored reading of the WSOL normalization literature);
- ``"meanstd"`` (or ``"meanstd:K"``): ``lo`` = the mean, ``hi = min(max, mean + K std)``
  (default ``K`` = :data:`MEANSTD_K`): a standard-score reading, so the cut at ``t`` lies
  ``t K`` standard deviations above the mean (or at ``t`` of the way to the max when the max is
  closer).

``"percentile:0"`` is ``"minmax"``.
"""

PERCENTILE = 50.0
MEANSTD_K = 2.0


def parse_norm(norm: str) -> tuple[str, float | None]:
    """``"percentile:10"`` -> ``("percentile", 10.0)``; ``"minmax"`` -> ``("minmax", None)``;
    a one-line ``ValueError`` for an unknown reading or a bad parameter."""
    text = str(norm)
    kind, sep, arg = text.partition(":")
    if kind not in NORMS:
        raise ValueError(f"unknown map normalization {text!r}; expected one of {', '.join(NORMS)} "
                         "(percentile:Q and meanstd:K take a parameter)")
    if kind in ("minmax", "positive"):
        if sep:
            raise ValueError(f"map normalization {kind} takes no parameter, got {text!r}")
        return kind, None
    if not sep:
        return kind, PERCENTILE if kind == "percentile" else MEANSTD_K
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"map normalization {text!r}: {arg!r} is not a number") from None
    if kind == "percentile" and not 0.0 <= value < 100.0:
        raise ValueError(f"map normalization {text!r}: the percentile must be in [0, 100)")
    if kind == "meanstd" and not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"map normalization {text!r}: K must be a positive number")
    return kind, value


def check_norm(norm: str) -> str:
    """``norm`` if it is a reading of :data:`NORMS` (with its optional parameter), else a
    one-line ``ValueError``."""
    parse_norm(norm)
    return norm
