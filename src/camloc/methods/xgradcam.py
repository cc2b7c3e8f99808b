"""XGrad-CAM ("Axiom-based Grad-CAM", BMVC 2020): channel weights that satisfy the
sensitivity and conservation axioms,

    alpha_k^c = sum_xy (A_k(x, y) / sum_ab A_k(a, b)) dS_c / dA_k(x, y),   M_c = ReLU(sum_k alpha_k^c A_k)

(``1e-7`` added to the channel sum, as the reference implementations do). On a GAP + linear head
``dS/dA`` is constant, so XGrad-CAM equals Grad-CAM there (up to that epsilon).
"""

from __future__ import annotations

from torch import Tensor

from camloc.methods.gradcam import GradCAM


class XGradCAM(GradCAM):
    name = "xgradcam"

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        total = activations.sum(dim=(-2, -1), keepdim=True) + 1e-7
        return (grads * activations / total).sum(dim=(-2, -1))
