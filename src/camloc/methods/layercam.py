"""Layer-CAM ("LayerCAM: Exploring Hierarchical Class Activation Maps for Localization", IEEE TIP 2021): each cell's activations weighted by the positive part
of their own gradient,

    M_c(x, y) = ReLU(sum_k ReLU(dS_c/dA_k(x, y)) A_k(x, y)),

which keeps fine detail at shallow layers where Grad-CAM's averaged weights blur. **Fusion of
several layers** (``layers=[...]``, the paper's Section III-C): each layer's map is min-max
normalized, scaled by ``tanh(gamma M)`` (Eq. 9, ``gamma = 2``: it lifts the weak responses of
shallow layers), brought to the largest layer's grid (bilinear) and fused by the element-wise max.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.methods._checks import finite
from camloc.methods.base import Net
from camloc.methods.fusion import minmax, stack_layers
from camloc.methods.gradcam import GradCAM
from camloc.methods.gradients import layer_gradients, layer_list
from camloc.methods.targets import Target


class LayerCAM(GradCAM):
    name = "layercam"

    def __init__(self, layer: str | nn.Module | None = None, layers: list | str | None = None, gamma: float = 2.0,
                 target: Target | str | None = None, closed_form: bool = True) -> None:
        super().__init__(layer, target, closed_form)
        self.layers = layer_list(layer, layers)
        self.gamma = finite("layercam: gamma", gamma, 0, strict=True)

    def cam_image(self, a: Tensor, g: Tensor) -> Tensor:
        return (g.clamp_min(0) * a).sum(dim=1).clamp_min(0)

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        if self.layers is None or len(self.layers) == 1:
            return super().maps(net, x, classes)
        gr = layer_gradients(net, x, classes, self.layers, self.target, what=self.name)
        with torch.no_grad():
            per_layer = [torch.stack([self.cam_image(a.detach(), g[i].detach()) for g in gr.grads], dim=1)
                         for i, a in enumerate(gr.acts)]
            scaled = [torch.tanh(self.gamma * minmax(m)) for m in per_layer]
            return stack_layers(scaled).amax(dim=0)
