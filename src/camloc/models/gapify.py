"""The paper's surgery on any torchvision CNN: cut it after a layer, add 3x3 convolutions, global
pooling and one linear layer, so that its class activation maps are exact.

    >>> import camloc, torchvision
    >>> net = camloc.load_model(camloc.gapify(torchvision.models.resnet18(), num_classes=10))
    >>> camloc.check_exact(net).exact
    True

The cut defaults to the layer that feeds the network's global pooling, stepping back over a
max pooling right before it (VGG's and AlexNet's pool5), which reproduces the paper's VGG16-GAP
and AlexNet-GAP trunks. ``layer=`` cuts elsewhere, by a node name of the traced graph (see
``torchvision.models.feature_extraction.get_graph_node_names``), e.g. ``"layer3"`` on a ResNet
for 14x14 maps at 224x224 or ``"inception4e"`` on GoogLeNet for the paper's GoogLeNet-GAP.

The registered builder ``gapify`` (``camloc.load_model("gapify", base="resnet50", ...)``) does
the same by torchvision name, so trained nets save to checkpoints that rebuild themselves.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from camloc.errors import ModelError
from camloc.models.net import CamNet, Preprocessing
from camloc.models.paper import GapNet, Pooling, load_full_weights
from camloc.models.registry import register
from camloc.models.torchvision_models import build_torchvision

_GLOBAL_POOL_CALLS = ("adaptive_avg_pool2d", "adaptive_max_pool2d", "mean", "avg_pool2d")


class _Cut(nn.Module):
    """A traced network that stops at one node and returns its output tensor."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        self.layer = layer
        self.body = create_feature_extractor(model, return_nodes={layer: "features"})

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)["features"]


def _base_name(node: str) -> str:
    """``mean_1`` -> ``mean``: traced function nodes carry a counter suffix."""
    head, _, tail = node.rpartition("_")
    return head if tail.isdigit() and head else node


def default_layer(model: nn.Module) -> str:
    """The node that feeds ``model``'s first global pooling (over a max pooling right before it).

    Raises:
        ModelError: no global pooling is found (pass ``layer=`` explicitly).
    """
    _, nodes = get_graph_node_names(model)
    modules = dict(model.named_modules())
    for i, node in enumerate(nodes):
        m = modules.get(node)
        is_pool = isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) or (
            m is None and _base_name(node) in _GLOBAL_POOL_CALLS)
        if is_pool and i > 0:
            j = i - 1
            if isinstance(modules.get(nodes[j]), nn.MaxPool2d) and j > 0:
                j -= 1
            return nodes[j]
    raise ModelError(f"{type(model).__name__}: no global pooling found to cut before; pass layer=<node name>")


def gapify(model: nn.Module | str, num_classes: int = 1000, *, layer: str | None = None, width: int = 1024,
           convs: int = 1, pooling: Pooling = "avg", dropout: float = 0.0,
           backbone_weights: str | os.PathLike | None = None, probe_size: int = 224) -> GapNet:
    """Turn a torchvision CNN into a GAP (or GMP) net as the paper does.

    Args:
        model: an ``nn.Module`` (its weights are kept) or a torchvision classifier name.
        num_classes: outputs of the new linear classifier.
        layer: the graph node to cut after (default: see :func:`default_layer`).
        width: units of each added 3x3 convolution (stride 1, pad 1, ReLU).
        convs: how many to add (0 pools the cut features directly).
        pooling: ``"avg"`` (exact CAM) or ``"max"``.
        dropout: dropout rate before the linear layer.
        backbone_weights: with a name, a local torchvision state-dict file for the backbone.
        probe_size: input side used once to measure the cut's channel count.

    Returns:
        A :class:`~camloc.models.paper.GapNet` whose ``camloc_head()`` makes CAM exact.

    Examples:
        >>> gap = camloc.gapify("resnet18", num_classes=4, width=64)   # cut, one 3x3 conv, GAP, linear
        >>> camloc.check_exact(camloc.load_model(gap)).exact
        True
    """
    if isinstance(model, str):
        model = build_torchvision(model, weights=backbone_weights).module
    elif backbone_weights is not None:
        raise ModelError("backbone_weights goes with a torchvision name; load weights into the module yourself")
    cut = layer or default_layer(model)
    _, nodes = get_graph_node_names(model)
    if cut not in nodes and not any(n.startswith(cut + ".") for n in nodes):  # a module name: its last node
        close = [n for n in nodes if n.startswith(cut.split(".")[0])][:5] or nodes[-5:]
        raise ModelError(f"{type(model).__name__}: no layer '{cut}' (e.g. {', '.join(close)})")
    was_training = model.training
    model.eval()
    try:
        trunk = _Cut(model, cut)
        with torch.no_grad():
            out = trunk(torch.zeros(1, 3, probe_size, probe_size))
    finally:
        model.train(was_training)
    if out.dim() != 4:
        raise ModelError(f"{type(model).__name__}: layer '{cut}' gives shape {tuple(out.shape)}, not (B, K, h, w) maps")
    trunk.train(was_training)
    return GapNet(trunk, int(out.shape[1]), num_classes, width=width, convs=convs, pooling=pooling, dropout=dropout)


@register("gapify", "any torchvision CNN cut after a layer + 3x3 convs + GAP + linear (base=<torchvision name>)")
def gapify_net(*, base: str = "resnet50", num_classes: int = 1000, layer: str = "", width: int = 1024, convs: int = 1,
               pooling: Pooling = "avg", dropout: float = 0.0, backbone_weights: str | os.PathLike | None = None,
               weights: str | os.PathLike | None = None) -> CamNet:
    """:func:`gapify` by torchvision name, as a :class:`CamNet` that checkpoints can rebuild."""
    module = gapify(base, num_classes, layer=layer or None, width=width, convs=convs, pooling=pooling,
                    dropout=dropout, backbone_weights=backbone_weights)
    if weights is not None:
        load_full_weights(module, weights, f"gapify({base})")
    size = (299, 299) if base == "inception_v3" else (224, 224)
    pre = Preprocessing(shape=size, mean=(0.5,) * 3, std=(0.5,) * 3) if base == "googlenet" else Preprocessing(shape=size)
    kwargs: dict[str, Any] = {"base": base, "num_classes": num_classes, "layer": module.trunk.layer, "width": width,
                              "convs": convs, "pooling": pooling, "dropout": dropout}
    return CamNet(module=module, name="gapify", class_names=[], preprocessing=pre, head=module.camloc_head(),
                  arch_kwargs=kwargs)


__all__ = ["default_layer", "gapify", "gapify_net"]
