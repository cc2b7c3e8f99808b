"""Maps of several layers brought to one grid: min-max per map, bilinear upsampling (half-pixel
centres) to the largest layer's shape. Used by Layer-CAM's fusion and RefineCAM."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def minmax(m: Tensor, eps: float = 1e-8) -> Tensor:
    """Each map of ``(..., h, w)`` to [0, 1] (``eps`` keeps a flat map at 0)."""
    lo = m.amin(dim=(-2, -1), keepdim=True)
    m = m - lo
    return m / (m.amax(dim=(-2, -1), keepdim=True) + eps)


def to_shape(maps: list[Tensor]) -> list[Tensor]:
    """``(B, k, h_i, w_i)`` maps upsampled to the largest ``(h, w)`` among them."""
    h = max(m.shape[-2] for m in maps)
    w = max(m.shape[-1] for m in maps)
    return [m if m.shape[-2:] == (h, w) else F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
            for m in maps]


def stack_layers(maps: list[Tensor]) -> Tensor:
    """``(L, B, k, h, w)`` on the largest grid."""
    return torch.stack(to_shape(maps))
