"""The readings of a map: its normalizations by name, their floor and top, the map's status and
its upsampling. NumPy only (no torch), so option checks, :mod:`camloc.boxes` and the saved-map
evaluation use them before torch loads; :mod:`camloc.cam` re-exports them."""

from __future__ import annotations

import math

import numpy as np

NORMS = ("minmax", "positive", "percentile", "meanstd")
DEFAULT_NORM = "positive"
"""The default reading of localize and serve: a map's positive part over its max (the paper's "20 %
of the max"). On the four sets of BENCHMARKS.md (``switches``) it is the one setting within 2x
the time per image that beats or matches min-max everywhere; ``norm="minmax"`` (``--norm
minmax``) gives the previous default."""
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


def norm_bounds(m: np.ndarray, norm: str = "minmax") -> tuple[float, float] | str:
    """The floor and top ``(lo, hi)`` of a map's reading (see :data:`NORMS`), or the reason it has
    none (:func:`map_status`).

    Examples:
        >>> norm_bounds(np.array([[-4.0, 0.0], [1.0, 3.0]]), "percentile")
        (0.5, 3.0)
        >>> norm_bounds(np.array([[0.0, 0.0], [0.0, 4.0]]), "meanstd:1")
        (1.0, 2.732050807568877)
    """
    kind, q = parse_norm(norm)
    m = np.asarray(m)
    if m.size == 0:
        return "empty map"
    if not np.isfinite(m).all():
        return "non-finite map"
    hi = float(m.max())
    if kind == "positive":  # a constant positive map is uniform evidence: all of it is above t * max
        return (0.0, hi) if hi > 0 else "no positive evidence"
    if kind == "minmax":
        lo = float(m.min())
    elif kind == "percentile":
        lo = float(np.percentile(m.astype(np.float64), q))
    else:
        f = m.astype(np.float64)
        lo, sd = float(f.mean()), float(f.std())
        hi = min(hi, lo + q * sd) if sd > 0 else hi  # type: ignore[operator]
    if not hi > lo:
        return "constant map"
    return lo, hi


def normalize_map(m: np.ndarray, norm: str = "minmax") -> np.ndarray:
    """A map in ``[0, 1]`` (float32): min-max (the default) or another reading of :data:`NORMS`.

    A map with no usable peak (see :func:`map_status`) becomes all zeros.

    Examples:
        >>> normalize_map(np.array([[-1.0, 0.0], [1.0, 3.0]]))
        array([[0.  , 0.25],
               [0.5 , 1.  ]], dtype=float32)
        >>> normalize_map(np.array([[-1.0, 0.0], [1.0, 3.0]]), "positive")
        array([[0.        , 0.        ],
               [0.33333334, 1.        ]], dtype=float32)
        >>> normalize_map(np.array([[-1.0, 0.0], [1.0, 3.0]]), "percentile")
        array([[0. , 0. ],
               [0.2, 1. ]], dtype=float32)
    """
    m = np.asarray(m, dtype=np.float32)
    bounds = norm_bounds(m, norm)
    if isinstance(bounds, str):
        return np.zeros_like(m, dtype=np.float32)
    kind = parse_norm(norm)[0]
    if kind == "positive":
        return np.maximum(m, np.float32(0)) / np.float32(bounds[1])
    lo, hi = bounds
    if kind == "minmax":
        return (m - lo) / (hi - lo)
    out = (m.astype(np.float64) - lo) / (hi - lo)  # in float64, so the top reads exactly 1
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def map_status(m: np.ndarray, norm: str = "minmax") -> str | None:
    """``None`` for a usable map, else a short reason: "empty map", "non-finite map", and
    "constant map" (the reading has no range: ``hi <= lo``), or with ``norm="positive"`` "no
    positive evidence" (the max is not above 0; a constant positive map is usable)."""
    bounds = norm_bounds(m, norm)
    return bounds if isinstance(bounds, str) else None


def upsample(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``shape = (height, width)`` (half-pixel centers).

    Examples:
        >>> upsample(np.array([[0.0, 1.0]]), (1, 4))
        array([[0.  , 0.25, 0.75, 1.  ]], dtype=float32)
    """
    import cv2

    h, w = shape
    m = np.ascontiguousarray(m, dtype=np.float32)
    if m.shape == (h, w):
        return m.copy()
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
