"""Map methods compared in the same harness, one small file each.

A method is called ``method(net, x, classes) -> (B, k, h, w)`` maps:

- ``cam`` -- :class:`CAM`, the paper's class activation maps (one forward, GAP/GMP heads);
- ``backprop`` -- :class:`Backprop`, vanilla gradient saliency (the paper's baseline);
- ``gradcam`` -- :class:`GradCAM`; ``gradcampp`` -- :class:`GradCAMpp` (any ``nn.Module``, a
  chosen target layer).
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
    """A method by name; ``layer`` is the target layer of the gradient methods."""
    if name not in METHODS:
        raise ValueError(f"unknown map method {name!r}; expected one of {', '.join(METHODS)}")
    cls = METHODS[name]
    if issubclass(cls, GradCAM):
        return cls(layer=layer, **kwargs)
    if layer is not None:
        raise ValueError(f"method {name!r} takes no target layer")
    return cls(**kwargs)


__all__ = ["CAM", "METHODS", "Backprop", "GradCAM", "GradCAMpp", "MapMethod", "get_method"]
