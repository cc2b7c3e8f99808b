"""Find where a classifier's features end and its linear head begins.

A :class:`Head` says which module to hook (its input or its output), which function the
network applies between that point and the pooling, and which ``nn.Linear`` classifies.
CAM is exact when the head is global average pooling + that one linear layer (dropout allowed
between); other heads are refused with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn


class HeadError(ValueError):
    """A model whose head does not admit plain CAM; ``str(err)`` is one line with the reason."""


@dataclass
class Head:
    """Where CAM reads a network.

    Attributes:
        feature_module: the module whose input (``capture="input"``) or output (``"output"``)
            holds the last feature maps ``(B, K, h, w)``.
        classifier: the linear layer applied to the pooled features.
        capture: read the hooked module's input or output.
        post: a function the network applies functionally to the hooked value before pooling
            (e.g. DenseNet's final ReLU), or ``None``.
        pooling: ``"avg"`` (global average pooling: CAM is exact) or ``"max"`` (global max
            pooling: the maps are the paper's GMP maps, the scores are not their means).
    """

    feature_module: nn.Module
    classifier: nn.Linear
    capture: Literal["input", "output"] = "input"
    post: Callable[[Tensor], Tensor] | None = None
    pooling: Literal["avg", "max"] = "avg"

    @property
    def exact(self) -> bool:
        return self.pooling == "avg"


def _linear_in(seq: nn.Module, what: str) -> nn.Linear:
    """The single nn.Linear of a classifier that may hold dropout around it."""
    if isinstance(seq, nn.Linear):
        return seq
    if isinstance(seq, nn.Sequential):
        layers = [m for m in seq if not isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten))]
        if len(layers) == 1 and isinstance(layers[0], nn.Linear):
            return layers[0]
        kinds = "-".join(type(m).__name__ for m in seq)
        raise HeadError(f"{what}: head is {kinds}, not one linear layer after pooling, so CAM is not exact")
    raise HeadError(f"{what}: classifier is {type(seq).__name__}, not a linear layer")


_REFUSED = {
    "VGG": "fully connected stack (Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear) after pooling",
    "AlexNet": "fully connected stack (Dropout-Linear-ReLU-Dropout-Linear-ReLU-Linear) after pooling",
    "MobileNetV3": "two-layer head (Linear-Hardswish-Dropout-Linear) after pooling",
    "ConvNeXt": "a LayerNorm between pooling and the linear layer",
    "SwinTransformer": "a transformer, not a convolutional GAP head",
    "VisionTransformer": "a transformer, not a convolutional GAP head",
    "MaxVit": "a transformer head (norm and MLP after pooling)",
}

_ADVICE = "; convert it to a GAP net (camloc.gapify) or use a gradient method (--method gradcam)"


def find_head(model: nn.Module) -> Head:
    """Locate the feature layer and the linear classifier of ``model``.

    Knows torchvision's ResNet/ResNeXt/Wide-ResNet, DenseNet, GoogLeNet, Inception-v3,
    EfficientNet (v1/v2), MobileNetV2, MNASNet, RegNet, ShuffleNetV2, the EfficientNet-Lite
    default, and any model that defines ``camloc_head()``; other models are searched for a
    global average pooling module followed by one ``nn.Linear``.

    Raises:
        HeadError: for heads where CAM is not exact (FC stacks, MobileNetV3, ConvNeXt, ...).
    """
    if hasattr(model, "camloc_head"):
        return model.camloc_head()
    kind = type(model).__name__
    if kind in _REFUSED:
        raise HeadError(f"{kind}: {_REFUSED[kind]}, so CAM is not exact{_ADVICE}")
    if kind in ("ResNet", "RegNet", "GoogLeNet", "Inception3", "QuantizableResNet"):
        return Head(model.avgpool, _linear_in(model.fc, kind), "input")
    if kind == "EfficientNet" and hasattr(model, "_fc"):  # the EfficientNet-Lite package
        return Head(model._avg_pooling, _linear_in(model._fc, kind), "input")
    if kind == "EfficientNet":
        return Head(model.avgpool, _linear_in(model.classifier, kind), "input")
    if kind in ("MobileNetV2", "MNASNet"):
        return Head(model.features if kind == "MobileNetV2" else model.layers, _linear_in(model.classifier, kind), "output")
    if kind == "DenseNet":
        return Head(model.features, _linear_in(model.classifier, kind), "output", post=F.relu)
    if kind == "ShuffleNetV2":
        return Head(model.conv5, _linear_in(model.fc, kind), "output")
    return _generic_head(model)


def _generic_head(model: nn.Module) -> Head:
    kind = type(model).__name__
    modules = list(model.named_modules())
    pools = [
        (i, m)
        for i, (_, m) in enumerate(modules)
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
        and m.output_size in (1, (1, 1))
    ]
    if not pools:
        raise HeadError(f"{kind}: no global pooling module found; give the model a camloc_head() or use a gradient method")
    i, pool = pools[-1]
    after = [m for _, m in modules[i + 1 :] if not list(m.children())]
    linears = [m for m in after if isinstance(m, nn.Linear)]
    others = [m for m in after if not isinstance(m, (nn.Linear, nn.Dropout, nn.Identity, nn.Flatten))]
    if len(linears) != 1 or others:
        kinds = "-".join(type(m).__name__ for m in after) or "nothing"
        raise HeadError(f"{kind}: head after pooling is {kinds}, not one linear layer, so CAM is not exact{_ADVICE}")
    pooling = "max" if isinstance(pool, nn.AdaptiveMaxPool2d) else "avg"
    return Head(pool, linears[0], "input", pooling=pooling)
