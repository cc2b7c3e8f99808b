"""The first principal component of a layer's activations over its cells, shared by Eigen-CAM,
Eigen-Grad-CAM and KPCA-CAM.

``X (h w, K)``: one row per cell, centred per channel. Eigen-CAM projects ``X`` on its first right
singular vector ``v_1``; KPCA-CAM takes the first kernel principal component. A principal
direction has no sign (``v`` and ``-v`` are both singular vectors; the reference implementation
keeps whatever LAPACK returns, then a ReLU): camloc fixes it so that the projection correlates
positively with the channel mean ``mean_k A_k`` (the map agrees with where the layer is active).
"""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.errors import MethodError


def cells(a: Tensor, what: str) -> Tensor:
    """``(B, h w, K)`` centred rows; refuses a one-channel layer (nothing to decompose)."""
    if a.dim() != 4:
        raise MethodError(f"{what}: the target layer gives shape {tuple(a.shape)}, not (B, K, h, w)")
    if a.shape[1] < 2:
        raise MethodError(f"{what}: the target layer has {a.shape[1]} channel; a principal component of one channel "
                          "is the channel itself, pick a layer with several channels")
    x = a.flatten(2).transpose(1, 2).double()
    x = torch.nan_to_num(x)
    return x - x.mean(dim=1, keepdim=True)


def orient(p: Tensor, a: Tensor) -> Tensor:
    """``p (B, h w)`` with its sign chosen to correlate positively with ``mean_k A_k``."""
    m = a.double().mean(dim=1).flatten(1)
    m = m - m.mean(dim=1, keepdim=True)
    sign = torch.where((p * m).sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(p.dtype)
    return p * sign


def first_component(a: Tensor, what: str) -> Tensor:
    """``(B, h, w)``: the cells projected on the first principal component (signed, oriented)."""
    x = cells(a, what)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    p = (x @ vh[:, 0, :].unsqueeze(-1)).squeeze(-1)
    return orient(p, a).view(a.shape[0], *a.shape[-2:]).to(a.dtype)
