"""Shapley-CAM ("CAMs as Shapley Value-based Explainers", arXiv 2025): Grad-CAM's channel weights
from a second-order estimate of each channel's Shapley value,

    w_k^c = mean_xy (g - 1/2 H A)_k(x, y),   g = dS_c/dA,  H A = d(g . A)/dA (a Hessian-vector product),
    M_c = ReLU(sum_k w_k^c A_k).

One forward, and per class column one backward with its graph kept plus one Hessian-vector
product. Where the score is piecewise linear in ``A`` (a ReLU network after the layer, a GAP +
linear head) ``H A = 0`` and Shapley-CAM equals Grad-CAM.
"""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.methods.base import Net
from camloc.methods.gradcam import GradCAM
from camloc.methods.gradients import layer_gradients


class ShapleyCAM(GradCAM):
    name = "shapleycam"

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        gr = layer_gradients(net, x, classes, None if self.layer is None else [self.layer], self.target,
                             closed_form=False, create_graph=True, what=self.name)
        a = gr.acts[0]
        out = []
        for g in gr.grads:
            g = g[0]
            hvp = None
            if g.requires_grad:
                (hvp,) = torch.autograd.grad(g, a, grad_outputs=a.detach(), retain_graph=True, allow_unused=True)
            with torch.no_grad():
                w = (g - 0.5 * hvp if hvp is not None else g).detach().mean(dim=(-2, -1))
                out.append(torch.einsum("bk,bkhw->bhw", w, a.detach()).clamp_min(0))
        return torch.stack(out, dim=1)
