"""Grad-CAM++: pixel-weighted gradients, with the closed form for an exponential score.

With ``g = d S_c / d A_k(x, y)``,

    a_k(x, y) = g^2 / (2 g^2 + sum_ab A_k(a, b) g^3)      (0 where the denominator is 0)
    w_k^c     = sum_xy a_k(x, y) ReLU(g)
    M_c       = ReLU(sum_k w_k^c A_k)
"""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.methods.gradcam import GradCAM


class GradCAMpp(GradCAM):
    name = "gradcampp"

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        g2 = grads.pow(2)
        g3 = grads.pow(3)
        denom = 2 * g2 + activations.sum(dim=(-2, -1), keepdim=True) * g3
        alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g2))
        return (alpha * grads.clamp_min(0)).sum(dim=(-2, -1))
