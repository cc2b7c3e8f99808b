"""Eigen-CAM ("Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020): the layer's activations projected on their first
principal component, no gradient and no class:

    X = [A(x, y)]_{cells} - mean (h w x K),  X = U S V^T,  M = ReLU(X v_1)   (reshaped to h x w)

The same map for every class asked (it explains what the layer sees, not a class). The sign of
``v_1`` is fixed by :mod:`camloc.methods.decomposition`. Refuses a one-channel layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.methods.base import MapMethod, Net, scores_and_activations
from camloc.methods.decomposition import first_component


class EigenCAM(MapMethod):
    name = "eigencam"
    family = "decomposition"

    def __init__(self, layer: str | nn.Module | None = None) -> None:
        self.layer = layer

    def project(self, a: Tensor) -> Tensor:
        return first_component(a, self.name)

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        with torch.no_grad():
            _, a = scores_and_activations(net, x, self.layer, grad=False)
            m = self.project(a.detach()).clamp_min(0)
        return m.unsqueeze(1).expand(-1, classes.shape[1], -1, -1).contiguous()
