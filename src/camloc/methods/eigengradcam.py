"""Eigen-Grad-CAM (the class-specific Eigen-CAM of pytorch-grad-cam): the first principal
component of the gradient-weighted activations ``dS_c/dA * A`` (see :mod:`camloc.methods.eigencam`),

    X = [g(x, y) * A(x, y)]_{cells} - mean,  M_c = ReLU(X v_1).

Takes the GAP + linear closed form for ``g`` (then ``g * A`` is ``A`` scaled per channel by ``w_c``).
"""

from __future__ import annotations

from torch import Tensor

from camloc.methods.decomposition import first_component
from camloc.methods.gradcam import GradCAM


class EigenGradCAM(GradCAM):
    name = "eigengradcam"
    family = "decomposition"

    def cam_image(self, a: Tensor, g: Tensor) -> Tensor:
        return first_component(g * a, self.name).clamp_min(0)
