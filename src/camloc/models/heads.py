"""Find where a classifier's features end and its linear head begins.

A :class:`Head` says which module to hook (its input or its output), which function the
network applies between that point and the pooling, and which ``nn.Linear`` classifies.
CAM is exact when the head is global average pooling + that one linear layer (dropout allowed
between), also with a LayerNorm or eval BatchNorm on the pooled vector before it (see
:mod:`camloc.models.pooled_norm`); other heads are refused with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camloc.errors import HeadError
from camloc.models.pooled_norm import NormalizedFeatures, is_pooled_norm


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
        norm: a LayerNorm or eval BatchNorm the network applies to the pooled vector before the
            classifier, or ``None``. When set, ``post`` is wrapped so that the maps are read from
            the normalized features and :meth:`bias` adds ``W β`` (exact; see
            :mod:`camloc.models.pooled_norm`).
    """

    feature_module: nn.Module
    classifier: nn.Linear
    capture: Literal["input", "output"] = "input"
    post: Callable[[Tensor], Tensor] | None = None
    pooling: Literal["avg", "max"] = "avg"
    norm: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.norm is not None and not isinstance(self.post, NormalizedFeatures):
            if self.pooling != "avg":
                raise HeadError(f"{type(self.norm).__name__} after global max pooling: CAM is not exact")
            self.post = NormalizedFeatures(self.norm, self.post)

    @property
    def exact(self) -> bool:
        return self.pooling == "avg"

    def bias(self, linear: nn.Linear | None = None) -> Tensor:
        """The constant that completes the maps' means to the scores for ``linear`` (default the
        head's classifier): its bias (zeros if none), plus ``W β`` after a pooled normalization."""
        linear = self.classifier if linear is None else linear
        if isinstance(self.post, NormalizedFeatures) and linear is self.classifier:
            return self.post.bias(linear)
        if linear.bias is not None:
            return linear.bias
        return torch.zeros(linear.out_features, device=linear.weight.device)


def _norm_linear(seq: nn.Module, what: str) -> tuple[nn.Module | None, nn.Linear]:
    """``(norm, linear)`` of a classifier ``[norm] (Flatten|Dropout)* Linear`` (ConvNeXt's
    LayerNorm2d-Flatten-Linear), with ``norm`` ``None`` when there is none."""
    if isinstance(seq, nn.Sequential) and len(seq) and is_pooled_norm(seq[0]):
        return seq[0], _linear_in(seq[1:], what)
    return None, _linear_in(seq, what)


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
    "VisionTransformer": "class-token head: the score reads the class token, not the mean of the patch grid",
    "MaxVit": "a transformer head (norm and MLP after pooling)",
}

_ADVICE = "; convert it to a GAP net (camloc.gapify) or use a gradient method (--method gradcam)"


def find_head(model: nn.Module) -> Head:
    """Locate the feature layer and the linear classifier of ``model``.

    Knows torchvision's ResNet/ResNeXt/Wide-ResNet, DenseNet, GoogLeNet, Inception-v3,
    EfficientNet (v1/v2), MobileNetV2, MNASNet, RegNet, ShuffleNetV2, ConvNeXt (its LayerNorm
    after pooling is carried into the maps), Swin and Swin-V2 (the normalized token grid), the
    EfficientNet-Lite package, and any model that defines ``camloc_head()``; other models are
    searched for a global average pooling module followed by one ``nn.Linear``, optionally after
    a LayerNorm or BatchNorm.

    Raises:
        HeadError: for heads where CAM is not exact (FC stacks, MobileNetV3, class-token ViT, ...).

    Examples:
        >>> import torchvision
        >>> head = camloc.find_head(torchvision.models.resnet18(num_classes=10))
        >>> type(head.feature_module).__name__, head.capture, head.classifier.out_features, head.pooling
        ('AdaptiveAvgPool2d', 'input', 10, 'avg')
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
    if kind == "SwinTransformer":  # v1 and v2: per-token norm, permute to (B, K, h, w), GAP, linear
        return Head(model.avgpool, _linear_in(model.head, kind), "input")
    if kind == "ConvNeXt":
        norm, linear = _norm_linear(model.classifier, kind)
        return Head(model.avgpool, linear, "input", norm=norm)
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
    pooling = "max" if isinstance(pool, nn.AdaptiveMaxPool2d) else "avg"
    kept = [m for m in after if not isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten))]
    norm = kept.pop(0) if len(kept) == 2 and pooling == "avg" and is_pooled_norm(kept[0]) else None
    if len(kept) != 1 or not isinstance(kept[0], nn.Linear):
        kinds = "-".join(type(m).__name__ for m in after) or "nothing"
        raise HeadError(f"{kind}: head after pooling is {kinds}, not one linear layer, so CAM is not exact{_ADVICE}")
    return Head(pool, kept[0], "input", pooling=pooling, norm=norm)
