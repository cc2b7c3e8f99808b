"""CAM (the paper's method) as a map method: ``M_c = sum_k w_k^c f_k`` from one forward pass."""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.cam import class_maps
from camloc.extract import cam
from camloc.methods.base import MapMethod, Net, scores_and_activations
from camloc.methods.engine import current_engine
from camloc.methods.shared import sharing
from camloc.models.net import CamNet


class CAM(MapMethod):
    """Class activation maps; needs a GAP (or GMP) + linear head (``CamNet`` or one that
    :func:`camloc.find_head` accepts; other heads raise ``HeadError``)."""

    name = "cam"

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        if isinstance(net, CamNet) and not getattr(net, "cam_refused", False) and (sharing(x) or current_engine() != "torch"):
            # inside shared_passes: the features of the forward the closed-form methods share; on
            # another engine, its forward (the same capture, post and classifier as camloc.extract.cam)
            logits, features = scores_and_activations(net, x, None, grad=False)
            bad = (~torch.isfinite(logits)).any(dim=1).nonzero().flatten().tolist()
            if bad:
                raise ValueError(f"non-finite scores for images {bad} of the batch (NaN or inf in the input or the weights)")
            return class_maps(features, net.classifier.weight, classes)
        if not isinstance(net, CamNet):
            from camloc.models.registry import load_model

            net = load_model(net)
        return cam(net, x, classes=classes).maps
