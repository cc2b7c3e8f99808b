"""Grad-CAM: the target layer's activations weighted by their spatially averaged gradients.

``alpha_k^c = mean_xy d S_c / d A_k(x, y)``, ``M_c = ReLU(sum_k alpha_k^c A_k)`` at the target
layer's resolution. For a GAP + linear head at the last features, ``alpha_k^c = w_k^c / (h w)``,
so Grad-CAM is ReLU(CAM) / (h w).
"""

from __future__ import annotations

from torch import Tensor, nn

from camloc.methods.base import MapMethod, Net, class_gradients, scores_and_activations


class GradCAM(MapMethod):
    name = "gradcam"

    def __init__(self, layer: str | nn.Module | None = None) -> None:
        self.layer = layer

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        """``(B, K)`` channel weights from the gradients (overridden by Grad-CAM++)."""
        return grads.mean(dim=(-2, -1))

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        logits, a = scores_and_activations(net, x, self.layer)
        if a.dim() != 4:
            raise ValueError(f"{self.name}: the target layer gives shape {tuple(a.shape)}, not (B, K, h, w)")
        out = []
        for g in class_gradients(logits, a, classes):
            w = self.weights(a, g)
            out.append((w[:, :, None, None] * a).sum(dim=1).clamp_min(0))
        import torch

        return torch.stack(out, dim=1).detach()
