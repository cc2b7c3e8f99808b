"""Nets for the gradient methods, whatever their head: a classifier whose head CAM refuses (an FC
stack, MobileNetV3's head, a class-token ViT) wrapped so that the pipeline and the evaluation
harness can run Backprop or Grad-CAM on it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from camloc.errors import one_line
from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.weights import read_state_dict


def gradient_net(module: torch.nn.Module, name: str = "", preprocessing: Any = None,
                 class_names: Sequence[str] = ()) -> CamNet:
    """Wrap a classifier whose head CAM refuses (an FC stack, MobileNetV3's head, ...) so the
    harness can run a gradient method on it: the last ``nn.Linear`` gives the number of classes
    and the last ``nn.Conv2d`` is the default target layer. Plain CAM on it is meaningless."""
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    if not linears or not convs:
        raise ValueError(f"{name or type(module).__name__}: needs a Conv2d and a final Linear layer for gradient maps")
    head = Head(convs[-1], linears[-1], "output")
    net = CamNet(module=module.eval(), name=name or type(module).__name__, class_names=list(class_names),
                 preprocessing=preprocessing or Preprocessing(), head=head)
    net.cam_refused = True  # type: ignore[attr-defined]
    return net


def load_for_gradients(spec: str, weights: str | None = None) -> CamNet:
    """A torchvision classifier by name (or ``timm:<name>``) for a gradient method, whatever its head."""
    import torchvision

    from camloc.models.timm_models import PREFIX
    from camloc.models.torchvision_models import imagenet_classes, is_torchvision_name

    if spec.startswith(PREFIX):
        return timm_gradient_net(spec[len(PREFIX):], weights)

    if not is_torchvision_name(spec):
        raise ValueError(f"unknown model '{spec}' for a gradient method (a torchvision name is needed)")
    module = torchvision.models.get_model(spec, weights=None)
    if weights:
        state = read_state_dict(weights, f"{spec} weights")
        try:
            module.load_state_dict(state)
        except Exception as err:
            raise ValueError(f"{weights}: cannot load weights into {spec} ({one_line(err, 160)})") from None
    return gradient_net(module, spec, class_names=imagenet_classes())


def timm_gradient_net(arch: str, weights: str | os.PathLike | None = None, **kwargs: Any) -> CamNet:
    """``timm:<arch>`` for a gradient method, whatever its head (a class-token ViT: the methods
    read its last block's patch-token grid, :mod:`camloc.models.token_grid`)."""
    from camloc.models.timm_models import PREFIX, TimmNet, timm_preprocessing, create_timm
    from camloc.models.torchvision_models import imagenet_classes

    model, _ = create_timm(arch, weights, **kwargs)
    names = imagenet_classes() if model.num_classes == 1000 else []
    return gradient_net(TimmNet(model), f"{PREFIX}{arch}", timm_preprocessing(model), names)
