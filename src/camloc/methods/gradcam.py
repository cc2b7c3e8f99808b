"""Grad-CAM: the target layer's activations weighted by their spatially averaged gradients.

``alpha_k^c = mean_xy d S_c / d A_k(x, y)``, ``M_c = ReLU(sum_k alpha_k^c A_k)`` at the target
layer's resolution ("Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization", ICCV 2017). For a GAP + linear head at the last features,
``alpha_k^c = w_k^c / (h w)``, so Grad-CAM is ReLU(CAM) / (h w), with no backward pass
(:mod:`camloc.methods.gradients`).

:class:`GradCAM` is also the base of the methods that read only ``(A, dS/dA)`` at one layer: a
subclass overrides :meth:`weights` (channel weights) or :meth:`cam_image` (the whole map).
Options: ``layer`` (a module or dotted name), ``target`` (:mod:`camloc.methods.targets`; default
the class logit), ``closed_form`` (take the GAP + linear closed form where it holds; default on).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.methods.base import MapMethod, Net
from camloc.methods.gradients import layer_gradients
from camloc.methods.targets import Target, make_target


class GradCAM(MapMethod):
    name = "gradcam"
    family = "gradient"

    def __init__(self, layer: str | nn.Module | None = None, target: Target | str | None = None,
                 closed_form: bool = True) -> None:
        self.layer = layer
        self.target = make_target(target)
        self.closed_form = bool(closed_form)

    def weights(self, activations: Tensor, grads: Tensor) -> Tensor:
        """``(B, K)`` channel weights from the gradients (overridden by Grad-CAM++, XGrad-CAM)."""
        return grads.mean(dim=(-2, -1))

    def cam_image(self, a: Tensor, g: Tensor) -> Tensor:
        """The map ``(B, h, w)`` from activations and gradients ``(B, K, h, w)``."""
        w = self.weights(a, g)
        return torch.einsum("bk,bkhw->bhw", w, a).clamp_min(0)

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        gr = layer_gradients(net, x, classes, None if self.layer is None else [self.layer], self.target,
                             closed_form=self.closed_form, what=self.name)
        a = gr.acts[0].detach()
        with torch.no_grad():
            return torch.stack([self.cam_image(a, g[0].detach()) for g in gr.grads], dim=1)
