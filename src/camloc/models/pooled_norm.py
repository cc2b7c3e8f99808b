"""Exact CAM through a normalization applied to the pooled vector (LayerNorm, eval BatchNorm).

Some heads normalize the globally pooled features before the linear layer (ConvNeXt:
GAP -> LayerNorm -> Linear). For one image with features ``f (K, h, w)`` and pooled vector
``p = mean_xy f``, a LayerNorm gives

    LN(p) = γ ⊙ (p - μ) / σ + β,      μ = mean_k p_k,   σ = sqrt(var_k p_k + eps)

where μ and σ are numbers of this image alone. So define the normalized features

    f'_k(x, y) = γ_k (f_k(x, y) - μ) / σ       (the same μ, σ for every position)

Their mean is ``mean_xy f' = γ ⊙ (p - μ) / σ = LN(p) - β``, and with the linear layer ``W, b``

    S = W LN(p) + b = W mean_xy f' + (W β + b)

so the maps ``M_c = Σ_k W_ck f'_k`` satisfy ``mean_xy M_c + (W β + b)_c = S_c`` exactly: CAM
of the normalized features, with the effective bias ``W β + b``. An eval-mode BatchNorm is the
same with per-channel constants from its running statistics: ``μ_k = running_mean_k``,
``σ_k = sqrt(running_var_k + eps)``. The maps are read after the normalization's scaling and
centring, which is what the classifier sees; only the constant ``β`` moves into the bias.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

NORMS = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)


def is_pooled_norm(module: nn.Module) -> bool:
    """A normalization :class:`NormalizedFeatures` can carry into the maps: a LayerNorm over the
    channels only (torchvision's and timm's channel-first ``LayerNorm2d`` subclass it) or a
    BatchNorm that tracks running statistics (used in eval mode)."""
    if isinstance(module, nn.LayerNorm):
        return len(module.normalized_shape) == 1
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return module.track_running_stats and module.running_mean is not None
    return False


class NormalizedFeatures:
    """``Head.post`` for a head ``pool -> norm -> linear``: ``f -> f'`` (see the module docstring).

    Args:
        norm: the normalization applied to the pooled vector (see :func:`is_pooled_norm`).
        inner: a function the network applies to the features before pooling (e.g. an
            activation), applied first, or ``None``.
    """

    def __init__(self, norm: nn.Module, inner: Callable[[Tensor], Tensor] | None = None) -> None:
        if not is_pooled_norm(norm):
            raise ValueError(f"{type(norm).__name__}: not a channel LayerNorm or a BatchNorm with running statistics")
        self.norm = norm
        self.inner = inner

    def __call__(self, features: Tensor) -> Tensor:
        f = self.inner(features) if self.inner is not None else features
        norm = self.norm
        k = f.shape[1]
        if isinstance(norm, nn.LayerNorm):
            p = f.mean(dim=(-2, -1))  # (B, K), the pooled vector
            mu = p.mean(dim=1)
            sigma = torch.sqrt(p.var(dim=1, unbiased=False) + norm.eps)
            shift, scale = mu.view(-1, 1, 1, 1), sigma.view(-1, 1, 1, 1)
        else:
            shift = norm.running_mean.view(1, k, 1, 1)
            scale = torch.sqrt(norm.running_var + norm.eps).view(1, k, 1, 1)
        out = (f - shift) / scale
        if norm.weight is not None:
            out = out * norm.weight.view(1, k, 1, 1)
        return out

    def bias(self, linear: nn.Linear) -> Tensor:
        """The effective bias ``W β + b`` of ``linear`` after this normalization."""
        b = linear.bias if linear.bias is not None else torch.zeros(linear.out_features, device=linear.weight.device)
        if self.norm.bias is None:
            return b
        return b + linear.weight @ self.norm.bias.to(linear.weight.dtype)
