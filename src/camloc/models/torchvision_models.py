"""torchvision classifiers by name, with weights from a local file only."""

from __future__ import annotations

import os
from typing import Any

import torchvision

from camloc.errors import ModelError, one_line
from camloc.models.heads import find_head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.weights import read_state_dict

_NOT_CLASSIFIERS = ("quantized_", "fasterrcnn", "maskrcnn", "keypointrcnn", "retinanet", "fcos", "ssd",
                    "deeplab", "fcn_", "lraspp", "raft", "r3d", "r2plus1d", "mc3", "mvit", "s3d", "swin3d")


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, as torchvision ships them."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def is_torchvision_name(name: str) -> bool:
    return name in torchvision.models.list_models() and not name.startswith(_NOT_CLASSIFIERS)


def build_torchvision(name: str, weights: str | os.PathLike | None = None, num_classes: int | None = None,
                      **kwargs: Any) -> CamNet:
    """A torchvision classifier by name; ``weights`` is a local state dict (a torch or ``.safetensors`` file).

    With a weights file, the number of classes is read from its classifier layer.
    Without one the weights are random (torchvision never downloads here).
    """
    if not is_torchvision_name(name):
        raise ModelError(f"unknown model '{name}'")
    state = None
    if weights is not None:
        state = read_state_dict(weights, f"{name} weights")
    extra: dict[str, Any] = dict(kwargs)
    if name in ("googlenet", "inception_v3"):
        extra.setdefault("aux_logits", False)
        extra.setdefault("init_weights", False)
    module = torchvision.models.get_model(name, weights=None, **({"num_classes": num_classes} if num_classes else {}), **extra)
    head = find_head(module)
    if state is not None:
        prefix = next(n for n, m in module.named_modules() if m is head.classifier)
        w = state.get(f"{prefix}.weight")
        if w is not None and w.shape[0] != head.classifier.out_features:
            num_classes = int(w.shape[0])
            module = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **extra)
            head = find_head(module)
        state = {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "aux1.", "aux2."))}
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise ModelError(f"{weights}: weights do not fit {name} ({one_line(err, 160)})") from None
    n = head.classifier.out_features
    size = (299, 299) if name == "inception_v3" else (224, 224)
    arch_kwargs = {"num_classes": n, **kwargs}
    return CamNet(module=module, name=name, class_names=imagenet_classes() if n == 1000 else [],
                  preprocessing=Preprocessing(shape=size), head=head, arch_kwargs=arch_kwargs)
