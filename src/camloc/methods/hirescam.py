"""HiResCAM ("Use HiResCAM instead of Grad-CAM for faithful explanations", 2020):
the gradient multiplies the activations cell by cell instead of being averaged first,

    M_c(x, y) = ReLU(sum_k dS_c/dA_k(x, y) A_k(x, y)).

Exact for a CNN ending in a linear layer on flattened features: there ``sum_xy M_c`` (before the
ReLU) plus the bias is the score. On a GAP + linear head it equals Grad-CAM.
"""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.methods.gradcam import GradCAM


class HiResCAM(GradCAM):
    name = "hirescam"

    def cam_image(self, a: Tensor, g: Tensor) -> Tensor:
        return (g * a).sum(dim=1).clamp_min(0)
