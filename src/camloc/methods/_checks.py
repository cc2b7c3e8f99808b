"""One-line checks of method options (numbers that must be finite, seeds in range)."""

from __future__ import annotations

import math

from camloc.errors import MethodError


def finite(what: str, value: object, low: float | None = None, strict: bool = False) -> float:
    """``value`` as a float, finite and ``>= low`` (``> low`` when ``strict``), else a one-line error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        raise MethodError(f"{what} must be a finite number{bound}, got {str(value)[:40]!r}")
    return float(value)


def seed(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise MethodError(f"{what} must be an integer in [0, 2^63), got {str(value)[:40]!r}")
    return value
