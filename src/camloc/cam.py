"""The CAM math: pure functions on tensors (no hooks, no I/O).

For a network whose head is global average pooling followed by one linear layer,

    M_c(x, y) = sum_k w_k^c f_k(x, y)          (the class activation map)
    S_c       = mean_xy M_c(x, y) + b_c        (the class score, exactly)

where ``f`` are the last convolutional features and ``w, b`` the linear layer's weight and bias.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def class_maps(features: Tensor | np.ndarray, weight: Tensor | np.ndarray, classes: Tensor | np.ndarray
               ) -> Tensor | np.ndarray:
    """Class activation maps ``M_c = sum_k w_k^c f_k`` for chosen classes.

    Tensors in, a tensor out (traceable, any device); NumPy arrays in, an array out (one
    batched matrix product: on the CPU about 50x faster than the same product in PyTorch here,
    which is what the inference pipeline uses).

    Args:
        features: ``(B, K, h, w)`` last convolutional features (after any activation that the
            network applies before pooling).
        weight: ``(C, K)`` linear classifier weight.
        classes: ``(B, n)`` class indices per image (or ``(n,)``, the same for every image).

    Returns:
        ``(B, n, h, w)`` raw maps at feature resolution, signed and unnormalized.

    Example:
        >>> f = torch.ones(1, 2, 2, 2); w = torch.tensor([[1.0, 2.0]])
        >>> class_maps(f, w, torch.tensor([[0]]))[0, 0]
        tensor([[3., 3.],
                [3., 3.]])
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (B, K, h, w), got shape {tuple(features.shape)}")
    if weight.ndim != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"weight must be (C, {features.shape[1]}) to match the features, got {tuple(weight.shape)}"
        )
    if isinstance(features, np.ndarray):
        classes = np.asarray(classes)
        if classes.ndim == 1:
            classes = np.broadcast_to(classes, (features.shape[0], classes.shape[0]))
        b, k, h, w_ = features.shape
        wc = np.asarray(weight, dtype=features.dtype)[classes]  # (B, n, K)
        return np.matmul(wc, features.reshape(b, k, h * w_)).reshape(b, classes.shape[1], h, w_)
    if classes.dim() == 1:
        classes = classes.unsqueeze(0).expand(features.shape[0], -1)
    w = weight.to(features.dtype)[classes]  # (B, n, K)
    return torch.einsum("bnk,bkhw->bnhw", w, features)


def scores_from_maps(maps: Tensor, bias: Tensor, classes: Tensor) -> Tensor:
    """The class scores a GAP head gives: ``mean_xy M_c + b_c`` -> ``(B, n)``."""
    if classes.dim() == 1:
        classes = classes.unsqueeze(0).expand(maps.shape[0], -1)
    return maps.mean(dim=(-2, -1)) + bias.to(maps.dtype)[classes]


from camloc.readings import MEANSTD_K, NORMS, PERCENTILE, check_norm, parse_norm  # noqa: E402,F401  (torch-free)


def norm_bounds(m: np.ndarray, norm: str = "minmax") -> tuple[float, float] | str:
    """The floor and top ``(lo, hi)`` of a map's reading (see :data:`NORMS`), or the reason it has
    none (:func:`map_status`).

    Example:
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


def positive_weights(weight: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """The classifier weight with its negative entries set to 0 (the "negative-weight clamping"
    reading: only features that vote for a class light up its map, none subtracts from it).
    Class scores are not affected: only the maps made from this weight are.

    Example:
        >>> positive_weights(np.array([[1.0, -2.0], [-0.5, 3.0]]))
        array([[1., 0.],
               [0., 3.]])
    """
    if isinstance(weight, np.ndarray):
        return np.maximum(weight, np.zeros((), weight.dtype))
    return weight.clamp(min=0)


def normalize_map(m: np.ndarray, norm: str = "minmax") -> np.ndarray:
    """A map in ``[0, 1]`` (float32): min-max (the default) or another reading of :data:`NORMS`.

    A map with no usable peak (see :func:`map_status`) becomes all zeros.

    Example:
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


def upsample(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``size = (height, width)`` (half-pixel centers)."""
    import cv2

    h, w = size
    m = np.ascontiguousarray(m, dtype=np.float32)
    if m.shape == (h, w):
        return m.copy()
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
