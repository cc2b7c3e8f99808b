"""Map methods compared in the same harness, one small file each.

A method is called ``method(net, x, classes) -> (B, k, h, w)`` maps:

- ``cam`` -- :class:`CAM`, the paper's class activation maps (one forward, GAP/GMP heads);
- ``backprop`` -- :class:`Backprop`, vanilla gradient saliency (the paper's baseline);
- ``gradcam`` -- :class:`GradCAM`; ``gradcampp`` -- :class:`GradCAMpp` (any ``nn.Module``, a
  chosen target layer).

Example (the hand-built colour net: every method puts class 0's box on the red square):

    >>> import torch, camloc
    >>> from camloc.testing.nets import colour_net
    >>> x = torch.zeros(1, 3, 64, 64); x[0, 0, 8:24, 40:56] = 2.0
    >>> {name: camloc.boxes_from_map(camloc.get_method(name)(colour_net(), x, [0])[0, 0].numpy())
    ...  for name in ("cam", "backprop", "gradcam", "gradcampp")}  # doctest: +NORMALIZE_WHITESPACE
    {'cam': [[40, 8, 55, 23]], 'backprop': [[40, 8, 55, 23]], 'gradcam': [[40, 8, 55, 23]],
     'gradcampp': [[40, 8, 55, 23]]}
"""

from __future__ import annotations

from typing import Any

from torch import nn

from camloc.methods.backprop import Backprop
from camloc.methods.base import MapMethod
from camloc.methods.cam import CAM
from camloc.methods.gradcam import GradCAM
from camloc.methods.gradcampp import GradCAMpp

METHODS: dict[str, type[MapMethod]] = {m.name: m for m in (CAM, Backprop, GradCAM, GradCAMpp)}


def get_method(name: str, layer: str | nn.Module | None = None, **kwargs: Any) -> MapMethod:
    """A method by name (a key of :data:`METHODS`); ``layer`` is the target layer of the gradient
    methods (default: the net's feature layer).

    Examples:
        >>> import camloc
        >>> camloc.get_method("gradcam")              # doctest: +ELLIPSIS
        <camloc.methods.gradcam.GradCAM object at 0x...>
        >>> camloc.get_method("cam", layer="features")
        Traceback (most recent call last):
        ...
        ValueError: method 'cam' takes no target layer
    """
    if name not in METHODS:
        raise ValueError(f"unknown map method {name!r}; expected one of {', '.join(METHODS)}")
    cls = METHODS[name]
    if issubclass(cls, GradCAM):
        return cls(layer=layer, **kwargs)
    if layer is not None:
        raise ValueError(f"method {name!r} takes no target layer")
    return cls(**kwargs)


__all__ = ["CAM", "METHODS", "Backprop", "GradCAM", "GradCAMpp", "MapMethod", "get_method"]
