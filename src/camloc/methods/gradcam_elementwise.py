"""Grad-CAM element-wise (the pytorch-grad-cam variant of HiResCAM; no paper of its own): the ReLU
is taken per channel and cell before the channel sum,

    M_c(x, y) = sum_k ReLU(dS_c/dA_k(x, y) A_k(x, y)),

so negative evidence in one channel cannot cancel positive evidence in another.
"""

from __future__ import annotations

from torch import Tensor

from camloc.methods.gradcam import GradCAM


class GradCAMElementWise(GradCAM):
    name = "gradcam_elementwise"

    def cam_image(self, a: Tensor, g: Tensor) -> Tensor:
        return (g * a).clamp_min(0).sum(dim=1)
