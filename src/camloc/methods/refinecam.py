"""RefineCAM ("How to Evaluate and Refine your CAM", arXiv 2605.14641): the maps of a base method
at several layers, each min-max normalized and brought to the largest layer's grid (bilinear),
multiplied cell by cell and normalized again,

    M_c = N(prod_l up(N(M_c^l))),   N = min-max,

so a cell stays bright only where every layer agrees: deep layers locate, shallow layers sharpen.
Options: ``layers`` (two or more target layers; default: the stage before the default layer and
the default layer, :func:`camloc.methods.base.previous_stage`), ``base`` (a registry name of a
one-layer gradient method: gradcam, gradcampp, xgradcam, hirescam,
gradcam_elementwise, layercam; default ``gradcampp``, as both reference implementations use).
"""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.errors import MethodError
from camloc.methods.base import MapMethod, Net, previous_stage
from camloc.methods.fusion import minmax, stack_layers
from camloc.methods.gradients import layer_gradients, layer_list
from camloc.methods.targets import Target, make_target


class RefineCAM(MapMethod):
    name = "refinecam"
    family = "gradient"

    def __init__(self, layers: list | str | None = None, base: str = "gradcampp", target: Target | str | None = None) -> None:
        from camloc.methods.gradcam import GradCAM
        from camloc.methods.gradcam_elementwise import GradCAMElementWise
        from camloc.methods.gradcampp import GradCAMpp
        from camloc.methods.hirescam import HiResCAM
        from camloc.methods.layercam import LayerCAM
        from camloc.methods.xgradcam import XGradCAM

        self.layers = layer_list(None, layers)
        if self.layers is not None and len(self.layers) < 2:
            raise MethodError(f"refinecam: needs two or more layers, got {len(self.layers)}")
        bases = {c.name: c for c in (GradCAM, GradCAMpp, XGradCAM, HiResCAM, GradCAMElementWise, LayerCAM)}
        if base not in bases:
            raise MethodError(f"refinecam: base must be one of {', '.join(bases)}, got {str(base)[:40]!r}")
        self.base = bases[base]()
        self.target = make_target(target)

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        layers = self.layers if self.layers is not None else [previous_stage(net, x), None]
        gr = layer_gradients(net, x, classes, layers, self.target, what=self.name)
        with torch.no_grad():
            per_layer = [minmax(torch.stack([self.base.cam_image(a.detach(), g[i].detach()) for g in gr.grads], dim=1))
                         for i, a in enumerate(gr.acts)]
            return minmax(stack_layers(per_layer).prod(dim=0))
