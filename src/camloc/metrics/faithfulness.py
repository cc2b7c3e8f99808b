"""Faithfulness of a map to the classifier it explains, beside localization.

- **Deletion / insertion AUC** (RISE-style): the pixels of the network input are ranked by the
  map (most salient first, ties by raster order); in ``K`` steps the top ``i/K`` of them are
  replaced by a *substrate* (deletion) or copied into the substrate (insertion), and the class's
  softmax probability is read at each of the ``K + 1`` points. The AUC is the trapezoid area
  under that curve over the fraction ``[0, 1]``: low deletion and high insertion mean a
  faithful map. All ``K + 1`` images of a batch go through the net in a few forward passes.
- **Average Drop / Increase in Confidence**: the input multiplied by the min-max normalized map
  (hidden pixels become 0 in the network's normalized input: the normalization's mean colour);
  drop = ``max(0, p - p_masked) / p`` averaged; increase = the share of images where
  ``p_masked > p``.
- **Pointing game**: a hit when the map's maximum (first in raster order) lies inside one of
  the ground-truth boxes ``[x0, y0, x1, y1]`` (inclusive).

Substrates: ``"blur"`` (a Gaussian blur of the input, sigma ``blur_sigma`` pixels), ``"mean"``
(each channel's mean over the image) or ``"zero"`` (0 in the normalized input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from camloc.metrics.base import Evaluator

SUBSTRATES = ("blur", "mean", "zero")
ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) input -> (N, C) logits


def substrate(x: torch.Tensor, kind: str = "blur", sigma: float = 5.0) -> torch.Tensor:
    """The image that deleted pixels become (and insertion starts from), like ``x (B, c, H, W)``."""
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if kind != "blur":
        raise ValueError(f"unknown substrate {kind!r}; expected one of {', '.join(SUBSTRATES)}")
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _probs(score_fn: ScoreFn, x: torch.Tensor, classes: torch.Tensor, chunk: int) -> torch.Tensor:
    """Softmax probability of ``classes[i]`` for each image ``x[i]``, ``chunk`` images per forward."""
    out = []
    with torch.inference_mode():
        for s in range(0, x.shape[0], chunk):
            logits = score_fn(x[s : s + chunk]).float()
            out.append(logits.softmax(dim=1).gather(1, classes[s : s + chunk, None]).squeeze(1))
    return torch.cat(out)


def _check(x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor) -> None:
    if x.dim() != 4 or maps.dim() != 3 or maps.shape[0] != x.shape[0] or maps.shape[1:] != x.shape[2:]:
        raise ValueError(f"faithfulness: maps {tuple(maps.shape)} must be (B, H, W) of inputs {tuple(x.shape)}")
    if classes.shape != (x.shape[0],):
        raise ValueError(f"faithfulness: one class per image expected, got {tuple(classes.shape)} for {x.shape[0]} images")


def perturbation_curves(score_fn: ScoreFn, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                        steps: int = 16, kind: str = "blur", sigma: float = 5.0,
                        chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves ``(B, steps + 1)`` of the class probability.

    ``x (B, c, H, W)`` is the network input, ``maps (B, H, W)`` the maps at that size,
    ``classes (B,)``. Point ``i`` has the top ``round(i * H * W / steps)`` pixels deleted
    (inserted); point 0 of deletion (``steps`` of insertion) is the intact image.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"faithfulness: steps must be a positive integer, got {steps!r}")
    classes = torch.as_tensor(classes, dtype=torch.long, device=x.device)
    maps = torch.as_tensor(maps, device=x.device).float()
    _check(x, maps, classes)
    B, _, H, W = x.shape
    n = H * W
    base = substrate(x, kind, sigma)
    flat = torch.nan_to_num(maps.reshape(B, n), nan=-np.inf)
    order = torch.argsort(-flat, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=x.device).expand(B, n).contiguous())  # 0 = most salient
    counts = torch.tensor([round(i * n / steps) for i in range(steps + 1)], device=x.device)
    gone = (rank[:, None, :] < counts[None, :, None]).reshape(B, steps + 1, 1, H, W).to(x.dtype)
    xs, bs = x[:, None], base[:, None]
    deleted = xs * (1 - gone) + bs * gone  # (B, K+1, c, H, W)
    inserted = bs * (1 - gone) + xs * gone
    both = torch.cat([deleted, inserted], dim=1).reshape(B * 2 * (steps + 1), *x.shape[1:])
    p = _probs(score_fn, both, classes.repeat_interleave(2 * (steps + 1)), chunk).reshape(B, 2, steps + 1)
    p = p.cpu().double().numpy()
    return p[:, 0], p[:, 1]


def auc(curves: np.ndarray) -> np.ndarray:
    """Trapezoid area of ``(B, K + 1)`` curves over ``[0, 1]`` (equally spaced points)."""
    c = np.asarray(curves, np.float64)
    k = c.shape[-1] - 1
    return (c.sum(axis=-1) - 0.5 * (c[..., 0] + c[..., -1])) / k


def confidence_change(score_fn: ScoreFn, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                      chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(p, p_masked)`` per image: the class probability of ``x`` and of ``x`` times the min-max
    normalized map (a constant map keeps nothing)."""
    classes = torch.as_tensor(classes, dtype=torch.long, device=x.device)
    maps = torch.nan_to_num(torch.as_tensor(maps, device=x.device).float())
    _check(x, maps, classes)
    lo = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - lo
    m = torch.where(span > 0, (maps - lo) / span.clamp_min(1e-12), torch.zeros_like(maps))
    p = _probs(score_fn, torch.cat([x, x * m[:, None].to(x.dtype)]), classes.repeat(2), chunk)
    p = p.cpu().double().numpy()
    return p[: len(x)], p[len(x):]


class FaithfulnessEvaluator(Evaluator):
    """Sums of deletion/insertion AUCs and curves, Average Drop / Increase and pointing hits."""

    name = "faithfulness"

    def __init__(self, steps: int = 16) -> None:
        super().__init__()
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"faithfulness: steps must be a positive integer, got {steps!r}")
        self.steps = steps
        self._state = {
            "count": np.zeros(1, np.int64), "deletion": np.zeros(1), "insertion": np.zeros(1),
            "deletion_curve": np.zeros(steps + 1), "insertion_curve": np.zeros(steps + 1),
            "drop": np.zeros(1), "increase": np.zeros(1, np.int64),
            "pointing_hits": np.zeros(1, np.int64), "pointing_count": np.zeros(1, np.int64),
        }

    def accumulate(self, deletion: np.ndarray, insertion: np.ndarray, p: np.ndarray, p_masked: np.ndarray) -> None:
        """One batch: curves ``(B, steps + 1)`` and the probabilities of :func:`confidence_change`."""
        deletion, insertion = np.asarray(deletion, np.float64), np.asarray(insertion, np.float64)
        if deletion.shape != insertion.shape or deletion.ndim != 2 or deletion.shape[1] != self.steps + 1:
            raise ValueError(f"faithfulness: curves must be (B, {self.steps + 1}), got {deletion.shape} and {insertion.shape}")
        p, p_masked = np.asarray(p, np.float64), np.asarray(p_masked, np.float64)
        s = self._state
        s["count"] += len(deletion)
        s["deletion"] += auc(deletion).sum()
        s["insertion"] += auc(insertion).sum()
        s["deletion_curve"] += deletion.sum(axis=0)
        s["insertion_curve"] += insertion.sum(axis=0)
        s["drop"] += (np.maximum(0.0, p - p_masked) / np.maximum(p, 1e-12)).sum()
        s["increase"] += int((p_masked > p).sum())

    def accumulate_pointing(self, hits: Sequence[bool]) -> None:
        self._state["pointing_hits"] += int(sum(bool(h) for h in hits))
        self._state["pointing_count"] += len(hits)

    def compute(self) -> dict[str, Any]:
        s = self._state
        n, m = int(s["count"][0]), int(s["pointing_count"][0])
        out: dict[str, Any] = {}
        if n:
            out.update({
                "deletion_auc": float(s["deletion"][0] / n), "insertion_auc": float(s["insertion"][0] / n),
                "average_drop": float(100 * s["drop"][0] / n), "increase_in_confidence": float(100 * s["increase"][0] / n),
                "faithfulness_steps": self.steps, "num_faithfulness_images": n,
                "deletion_curve": (s["deletion_curve"] / n).tolist(), "insertion_curve": (s["insertion_curve"] / n).tolist(),
            })
        if m:
            out["pointing_game"] = float(100 * s["pointing_hits"][0] / m)
        return out
