"""Smooth Grad-CAM++ ("Smooth Grad-CAM++", arXiv 2019): Grad-CAM++ with the gradients averaged over ``n``
noisy copies of the input ("SmoothGrad: removing noise by adding noise", 2017), ``x + N(0, sigma^2)`` on the
preprocessed input:

    D_p = 1/n sum_i (dS_c/dA (x + e_i))^p,   p = 1, 2, 3
    a_k(x, y) = D_2 / (2 D_2 + sum_ab A_k(a, b) D_3),   w_k = sum_xy a_k(x, y) ReLU(D_1),
    M_c = ReLU(sum_k w_k A_k)

with ``A`` the clean input's activations. The clean image and its ``n`` noisy copies run as one
batch (one forward, one backward per class column). Options: ``n`` (samples, default 4),
``sigma`` (noise standard deviation on the normalized input, default 0.3), ``seed`` (the noise
is reproducible). On a GAP + linear head at the CAM features the gradient does not depend on the
input, so the maps equal Grad-CAM++'s there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.methods._checks import seed as seed_check
from camloc.methods.base import Net
from camloc.methods.gradcam import GradCAM
from camloc.methods.gradients import layer_gradients
from camloc.methods.targets import Target


class SmoothGradCAMpp(GradCAM):
    name = "smoothgradcampp"

    def __init__(self, layer: str | nn.Module | None = None, n: int = 4, sigma: float = 0.3, seed: int = 0,
                 target: Target | str | None = None, closed_form: bool = True) -> None:
        super().__init__(layer, target, closed_form)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4096:
            raise MethodError(f"smoothgradcampp: n must be an integer in [1, 4096], got {n!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma < float("inf"):
            raise MethodError(f"smoothgradcampp: sigma must be a finite number >= 0, got {sigma!r}")
        self.n, self.sigma, self.seed = n, float(sigma), seed_check("smoothgradcampp: seed", seed)

    def noise(self, x: Tensor) -> Tensor:
        """``(n, *x.shape)`` Gaussian noise, the same for the same seed."""
        gen = torch.Generator().manual_seed(self.seed)
        return (torch.randn((self.n, *x.shape), generator=gen) * self.sigma).to(x.device, x.dtype)

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        B = x.shape[0]
        batch = torch.cat([x, (x.unsqueeze(0) + self.noise(x)).flatten(0, 1)])
        gr = layer_gradients(net, batch, classes.repeat(self.n + 1, 1), None if self.layer is None else [self.layer],
                             self.target, closed_form=self.closed_form, what=self.name)
        a = gr.acts[0].detach()[:B]
        out = []
        with torch.no_grad():
            for g in gr.grads:
                gn = g[0].detach()[B:].unflatten(0, (self.n, B))
                d1, d2, d3 = gn.mean(0), gn.pow(2).mean(0), gn.pow(3).mean(0)
                denom = 2 * d2 + a.sum(dim=(-2, -1), keepdim=True) * d3
                alpha = torch.where(denom != 0, d2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(d2))
                w = (alpha * d1.clamp_min(0)).sum(dim=(-2, -1))
                out.append(torch.einsum("bk,bkhw->bhw", w, a).clamp_min(0))
        return torch.stack(out, dim=1)
