"""Backprop: vanilla gradient saliency, the paper's baseline.

``M_c(x, y) = max over colour channels |d S_c / d I(x, y)|`` at input resolution, where ``S_c``
is the class score (logit) and ``I`` the preprocessed input image.
"""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.methods.base import MapMethod, Net, logits_of, module_of
from camloc.models.net import evaluating


class Backprop(MapMethod):
    name = "backprop"

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        model = module_of(net)
        with evaluating(model), torch.enable_grad():
            inp = x.detach().clone().requires_grad_(True)
            logits = logits_of(model(inp))
            out = []
            for j in range(classes.shape[1]):
                s = logits.gather(1, classes[:, j : j + 1]).sum()
                (g,) = torch.autograd.grad(s, inp, retain_graph=j + 1 < classes.shape[1])
                out.append(g.abs().amax(dim=1))
        return torch.stack(out, dim=1).detach()
