"""The CVPR 2020 WSOL benchmark's other two backbones, turned GAP: ``resnet50_gap`` and
``inception_v3_gap`` (its third, VGG16, is :mod:`camloc.models.paper`'s ``vgg16_gap``, whose
``large_feature_map`` drops pool4 as the benchmark does).

=====================  ===========================================  =====  ==========================
registry name          trunk (torchvision layers kept)              convs  maps @224 (large)
=====================  ===========================================  =====  ==========================
``resnet50_gap``       ResNet50 to layer4, layer4's stride 1        0      14x14 (28x28: layer3's 1)
``inception_v3_gap``   InceptionV3 to Mixed_6e                      1      12x12 (25x25: Mixed_6a's 1)
=====================  ===========================================  =====  ==========================

As in the benchmark, ResNet50's layer4 always runs at stride 1 and ``large_feature_map`` sets
layer3's to 1 as well (strides, not dilations: the weights are unchanged); InceptionV3 is cut
after Mixed_6e with a 3x3x1024 convolution added, and ``large_feature_map`` runs Mixed_6a at
stride 1 (its strided 3x3 convolutions padded by 1, its max pooling 3x3 stride 1 padded by 1).
The benchmark also re-pads InceptionV3's stem for 28x28 maps at 224; here the stem is
torchvision's (25x25). Random initialization, or a local torchvision state dict
(``backbone_weights=FILE``); nothing is downloaded. InceptionV3's preprocessing maps the input
to [-1, 1] (mean 0.5, std 0.5), what torchvision's ``transform_input`` does for its weights.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from camloc.models.net import CamNet, Preprocessing
from camloc.models.paper import GapNet, Pooling, load_backbone, load_full_weights
from camloc.models.registry import register

_RESNET_KEPT = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_INCEPTION_KEPT = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                   "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                   "Mixed_6e")


def _unstride_bottleneck(layer: nn.Sequential) -> None:
    """Stride 1 in the first bottleneck of a ResNet stage (its 3x3 conv and its shortcut)."""
    block = layer[0]
    block.conv2.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


def resnet50_trunk(backbone_weights: str | os.PathLike | None, large_feature_map: bool) -> tuple[nn.Module, int]:
    tv = torchvision.models.resnet50(weights=None)
    if backbone_weights is not None:
        load_backbone(tv, backbone_weights, "resnet50", tuple(f"{n}." for n in _RESNET_KEPT if n not in ("relu", "maxpool")))
    _unstride_bottleneck(tv.layer4)
    if large_feature_map:
        _unstride_bottleneck(tv.layer3)
    return nn.Sequential(OrderedDict((n, getattr(tv, n)) for n in _RESNET_KEPT)), 2048


class _Mixed6aStride1(nn.Module):
    """InceptionV3's Mixed_6a (same layers and weights) run at stride 1."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3 = (
            block.branch3x3dbl_1, block.branch3x3dbl_2, block.branch3x3dbl_3)
        for conv in (self.branch3x3.conv, self.branch3x3dbl_3.conv):
            conv.stride, conv.padding = (1, 1), (1, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=1, padding=1)], 1)


def inception_v3_trunk(backbone_weights: str | os.PathLike | None, large_feature_map: bool) -> tuple[nn.Module, int]:
    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=backbone_weights is None)
    if backbone_weights is not None:
        load_backbone(tv, backbone_weights, "inception_v3", tuple(f"{n}." for n in _INCEPTION_KEPT if "pool" not in n))
    layers = OrderedDict((n, getattr(tv, n)) for n in _INCEPTION_KEPT)
    if large_feature_map:
        layers["Mixed_6a"] = _Mixed6aStride1(tv.Mixed_6a)
    return nn.Sequential(layers), 768


_NETS = {
    # name: (trunk builder, default added convs, preprocessing, description)
    "resnet50_gap": (resnet50_trunk, 0, Preprocessing(),
                     "ResNet50-GAP (CVPR 2020 WSOL benchmark): ResNet50 to layer4 at stride 16 (8 with "
                     "large_feature_map), GAP, linear"),
    "inception_v3_gap": (inception_v3_trunk, 1, Preprocessing(shape=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3),
                         "InceptionV3-GAP (CVPR 2020 WSOL benchmark): InceptionV3 to Mixed_6e, 3x3x1024 conv, GAP, "
                         "linear (Mixed_6a at stride 1 with large_feature_map)"),
}


def _make_builder(name: str):
    trunk_of, default_convs, pre, doc = _NETS[name]

    def builder(*, num_classes: int = 1000, backbone_weights: str | os.PathLike | None = None,
                weights: str | os.PathLike | None = None, width: int = 1024, convs: int = default_convs,
                dropout: float = 0.0, large_feature_map: bool = False, pooling: Pooling = "avg") -> CamNet:
        trunk, channels = trunk_of(backbone_weights, bool(large_feature_map))
        module = GapNet(trunk, channels, num_classes, width=width, convs=convs, pooling=pooling, dropout=dropout)
        if weights is not None:
            load_full_weights(module, weights, name)
        kwargs: dict[str, Any] = {"num_classes": num_classes, "width": width, "convs": convs, "dropout": dropout,
                                  "large_feature_map": bool(large_feature_map), "pooling": pooling}
        return CamNet(module=module, name=name, class_names=[], preprocessing=Preprocessing(pre.shape, pre.mean, pre.std),
                      head=module.camloc_head(), arch_kwargs=kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return builder


for _name in _NETS:
    register(_name, _NETS[_name][3])(_make_builder(_name))
