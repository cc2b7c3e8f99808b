"""Scores that mean what they say: temperature scaling (Guo et al., ICML 2017), the figures that
measure it, and the temperatures shipped for the embedded nets (``temperatures.json``, checked
against the weights' hash, :func:`model_digest`). NumPy and SciPy (torch only inside
:func:`model_digest`).

A record's ``score`` is ``softmax(logits / T)[c]``: one parameter ``T > 0`` per net and geometry,
fitted by minimizing the log loss on labelled photos (:func:`fit_temperature`). Dividing every
logit by one positive number keeps their order, so the top-k classes and their maps are unchanged.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SHIPPED = Path(__file__).with_name("temperatures.json")
ECE_BINS = 15
T_RANGE = (1e-3, 1e3)  # the temperatures searched (a fit at either end is refused)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax over the last axis of ``logits / temperature``, in float64.

    Example:
        >>> softmax(np.array([0.0, 2.0]), 2.0).round(4)
        array([0.2689, 0.7311])
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_loss(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)`` (nats)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.mean(lse - z[np.arange(len(labels)), labels]))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-1 class: the photos binned by their top-1 probability
    in ``bins`` equal bins of [0, 1]; the mean over photos of ``|accuracy - confidence|`` of their bin.

    Example:
        >>> ece(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]), bins=10)
        0.25
    """
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    right = (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(right[inside].mean() - conf[inside].mean())
    return round(float(total / len(conf)), 12)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` in :data:`T_RANGE` minimizing :func:`log_loss` (a bounded scalar search on
    ``log T``; the log loss is convex in ``1/T``). ``ValueError`` for no photos, labels out of range,
    or a minimum at (or a loss flat up to) either end of the range: photos all classified right with
    room to spare (the loss falls as ``T -> 0``), or logits that carry no usable confidence."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) == 0 or len(labels) != len(logits):
        raise ValueError(f"temperature fit: expected (N, C) logits and N labels, got {logits.shape} and {labels.shape}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"temperature fit: a label is out of range for {logits.shape[1]} classes")
    if not np.isfinite(logits).all():
        raise ValueError("temperature fit: non-finite logits")
    lo, hi = (math.log(t) for t in T_RANGE)
    res = minimize_scalar(lambda s: log_loss(logits, labels, math.exp(s)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-5})
    t = float(math.exp(res.x))
    best = log_loss(logits, labels, t)
    if any(log_loss(logits, labels, end) <= best + 1e-12 for end in T_RANGE):  # at, or flat up to, an end
        raise ValueError(f"temperature fit: the best temperature lies at the end of the searched range "
                         f"({T_RANGE[0]:g}..{T_RANGE[1]:g}): the scores carry no usable confidence on these photos")
    return t


def report(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict[str, float]:
    """Top-1, top-5, ECE and log loss of ``logits`` at temperature 1 and at ``temperature``."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(-logits, axis=1)
    out = {"num_images": int(len(labels)),
           "top1": float((order[:, 0] == labels).mean() * 100),
           "top5": float((order[:, :5] == labels[:, None]).any(axis=1).mean() * 100)}
    for name, t in (("before", 1.0), ("after", float(temperature))):
        out[f"ece_{name}"] = ece(softmax(logits, t), labels)
        out[f"log_loss_{name}"] = log_loss(logits, labels, t)
    return out


def model_digest(net: Any) -> str:
    """SHA-256 of the net's weights (its state dict), and of its probe's when one is attached: what a
    calibration file names as the model it was made for. Remembered on the net until a weight is
    changed in place or replaced (each tensor's version counter is part of the key)."""
    import hashlib

    from camloc.probe.features import weights_digest

    modules = [net.module] + ([net.probe] if getattr(net, "probe", None) is not None else [])
    key = tuple((id(v), v._version) for m in modules for v in m.state_dict(keep_vars=True).values())
    memo = getattr(net, "_camloc_digest", None)
    if memo is not None and memo[0] == key:
        return memo[1]
    h = weights_digest(net.module)
    if len(modules) > 1:
        h = hashlib.sha256((h + weights_digest(net.probe)).encode()).hexdigest()
    try:
        net._camloc_digest = (key, h)
    except AttributeError:
        pass
    return h


def views_of(resize: Any = None, tta: Any = None) -> str:
    """How images meet the net, as a calibration file and a record header name it:
    ``"scales=288"`` (aspect geometry), ``"flip,scales=256,320"`` (TTA), ``"squash"``."""
    if tta is not None:
        return tta.describe()
    return f"scales={resize.size}" if resize.mode == "aspect" else "squash"


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    try:
        return json.loads(SHIPPED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def shipped_temperature(net: Any, views: str) -> tuple[float, str] | None:
    """``(T, views fitted on)`` for an embedded net with its packaged weights (checked by hash), at
    ``views`` or, when those were not fitted, the fitted views of the same geometry with the closest
    scale; ``None`` for any other net."""
    entry = _shipped().get("models", {}).get(getattr(net, "name", ""))
    if not entry or getattr(net, "probe", None) is not None:
        return None
    if model_digest(net) != entry.get("weights_sha256"):
        return None
    fitted = entry.get("temperatures", {})
    if views in fitted:
        return float(fitted[views]["temperature"]), views
    side = _first_scale(views)
    near = [(abs(_first_scale(k) - side), k) for k in fitted if side is not None and _first_scale(k) is not None]
    if not near:
        return None
    key = min(near)[1]
    return float(fitted[key]["temperature"]), key


def _first_scale(views: str) -> int | None:
    if "scales=" not in views:
        return None
    try:
        return int(views.split("scales=")[1].split(",")[0])
    except ValueError:
        return None
