"""KPCA-CAM ("KPCA-CAM: Visual Explainability of Deep Computer Vision Models using Kernel PCA", 2024): Eigen-CAM with kernel PCA, the first principal component in
a kernel's feature space:

    K_ij = k(X_i, X_j),  K~ = centred K (double centring),  K~ u = lambda u,  M = ReLU(sqrt(lambda) u)

over the centred cells ``X (h w x K)`` of the layer; kernels ``sigmoid`` (``tanh(gamma <x, y> + 1)``,
the default, as the paper's code), ``rbf`` (``exp(-gamma |x - y|^2)``), ``linear`` (= Eigen-CAM up
to scale), ``gamma`` default ``1 / K``. Batched: one ``eigh`` of ``(B, h w, h w)``. Sign as Eigen-CAM's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.methods.decomposition import cells, orient
from camloc.methods.eigencam import EigenCAM

KERNELS = ("sigmoid", "rbf", "linear")


class KPCACAM(EigenCAM):
    name = "kpcacam"

    def __init__(self, layer: str | nn.Module | None = None, kernel: str = "sigmoid", gamma: float | None = None) -> None:
        super().__init__(layer)
        if kernel not in KERNELS:
            raise MethodError(f"kpcacam: kernel must be one of {', '.join(KERNELS)}, got {str(kernel)[:40]!r}")
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma < float("inf")):
            raise MethodError(f"kpcacam: gamma must be a finite number > 0, got {gamma!r}")
        self.kernel, self.gamma = kernel, gamma

    def project(self, a: Tensor) -> Tensor:
        x = cells(a, self.name)
        gamma = self.gamma if self.gamma is not None else 1.0 / x.shape[-1]
        dot = x @ x.transpose(1, 2)
        if self.kernel == "sigmoid":
            k = torch.tanh(gamma * dot + 1.0)
        elif self.kernel == "rbf":
            sq = dot.diagonal(dim1=1, dim2=2)
            k = torch.exp(-gamma * (sq[:, :, None] + sq[:, None, :] - 2 * dot).clamp_min(0))
        else:
            k = dot
        n = k.shape[-1]
        one = torch.full((n, n), 1.0 / n, dtype=k.dtype, device=k.device)
        kc = k - one @ k - k @ one + one @ k @ one
        vals, vecs = torch.linalg.eigh(kc)
        p = vecs[..., -1] * vals[:, -1:].clamp_min(0).sqrt()
        return orient(p, a).view(a.shape[0], *a.shape[-2:]).to(a.dtype)
