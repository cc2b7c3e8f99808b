"""CAM (the paper's method) as a map method: ``M_c = sum_k w_k^c f_k`` from one forward pass."""

from __future__ import annotations

from torch import Tensor

from camloc.extract import cam
from camloc.methods.base import MapMethod, Net
from camloc.models.net import CamNet


class CAM(MapMethod):
    """Class activation maps; needs a GAP (or GMP) + linear head (``CamNet`` or one that
    :func:`camloc.find_head` accepts; other heads raise ``HeadError``)."""

    name = "cam"

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        if not isinstance(net, CamNet):
            from camloc.models.registry import load_model

            net = load_model(net)
        return cam(net, x, classes=classes).maps
