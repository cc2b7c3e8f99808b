"""The paper's GAP networks (and their GMP twins), built from torchvision's definitions.

Each net is ``trunk -> convs x (3x3 conv, stride 1, pad 1, ReLU) -> global pooling -> linear``:

=====================  ============================================  =======  =========
registry name          trunk (torchvision layers kept)                convs    maps @224
=====================  ============================================  =======  =========
``alexnet_gap``        AlexNet up to conv5 + ReLU (pool5 removed)    1x1024   13x13
``alexnet_star_gap``   the same, two more 3x3x1024 convs before GAP  3x1024   13x13
``vgg16_gap``          VGG16 up to conv5_3 + ReLU (pool5 removed)    1x1024   14x14
``googlenet_gap``      GoogLeNet up to inception4e, no aux heads     1x1024   14x14
=====================  ============================================  =======  =========

``large_feature_map=True`` (the published WSOL evaluation code's "large feature map") drops one
more pooling layer from the trunk, so the maps are twice as fine: AlexNet without the pool after
conv2 (27x27 at 224), VGG16 without pool4 (28x28), GoogLeNet without the pool before
inception4a (28x28). The layers keep their names, so weights load into either variant.

``*_gmp`` are the same nets with global max pooling instead of average pooling. With GAP the
class score is exactly the mean of its class activation map plus the bias,
``S_c = mean_xy M_c(x, y) + b_c`` with ``M_c = sum_k w_k^c f_k``; with GMP it is
``S_c = sum_k w_k^c max_xy f_k(x, y) + b_c`` and the maps are read the same way.

Backbones start from a local torchvision state-dict file (``backbone_weights=FILE``) or from
torchvision's random initialization (He-normal for AlexNet's convolutions, as torchvision does
for VGG: PyTorch's default barely trains AlexNet from scratch); nothing is downloaded. The added layers are initialized
with He-normal convolutions (fan-out, zero bias) and an ``N(0, 0.01)`` linear layer.

GoogLeNet's torchvision ImageNet weights were trained on inputs scaled to ``[-1, 1]``
(torchvision re-maps the input with ``transform_input=True``); GoogLeNet-GAP's preprocessing is
therefore mean 0.5, std 0.5, the same mapping done at preprocessing time.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Literal

import torchvision
from torch import Tensor, nn

from camloc.errors import ModelError, one_line
from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import register
from camloc.models.torchvision_models import imagenet_classes
from camloc.models.weights import read_state_dict

Pooling = Literal["avg", "max"]
GOOGLENET_PREPROCESSING = Preprocessing(shape=(224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
_GOOGLENET_KEPT = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                   "inception4a", "inception4b", "inception4c", "inception4d", "inception4e")


class GapNet(nn.Module):
    """``trunk -> convs x (Conv3x3(width), ReLU) -> global pool -> dropout -> linear``.

    Args:
        trunk: the kept part of a backbone, ``(B, 3, H, W) -> (B, in_channels, h, w)``.
        in_channels: channels of the trunk's output.
        num_classes: outputs of the linear classifier.
        width: units of each added 3x3 convolution (the paper: 1024).
        convs: how many 3x3 convolutions to add (0 pools the trunk's output directly).
        pooling: ``"avg"`` (GAP: CAM is exact) or ``"max"`` (GMP).
        dropout: dropout rate between pooling and the linear layer (0 = none).

    ``camloc_head()`` points CAM at the pooling layer's input (the last features, after the
    ReLU) and at ``fc``; ``new_parameters()`` are the added layers (for a larger learning rate).
    """

    def __init__(self, trunk: nn.Module, in_channels: int, num_classes: int, width: int = 1024, convs: int = 1,
                 pooling: Pooling = "avg", dropout: float = 0.0) -> None:
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ModelError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        if convs < 0 or width < 1 or num_classes < 1:
            raise ModelError(f"need convs >= 0, width >= 1, num_classes >= 1 (got {convs}, {width}, {num_classes})")
        self.trunk = trunk
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.extra = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if pooling == "avg" else nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        self.pooling: Pooling = pooling
        for m in self.extra.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: Tensor) -> Tensor:
        """The last feature maps ``f`` (what the class activation maps are made of)."""
        return self.extra(self.trunk(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.pool(self.features(x)).flatten(1)))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input", pooling=self.pooling)

    def new_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the layers added on top of the backbone."""
        yield from self.extra.parameters()
        yield from self.fc.parameters()


def load_backbone(module: nn.Module, path: str | os.PathLike, arch: str, kept: tuple[str, ...]) -> None:
    """Load a torchvision ``arch`` state dict from ``path`` into ``module`` (a torchvision model).

    Only the layers under the prefixes ``kept`` must be present; the classifier and auxiliary
    heads may be missing or of any size (they are dropped). Raises a one-line ``ModelError``
    naming the file when the file is not a state dict of that architecture.
    """
    name = os.fspath(path)
    state = read_state_dict(name, f"{arch} backbone weights")
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k.startswith(kept)}
    needed = [k for k in own if k.startswith(kept)]
    missing = [k for k in needed if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}"
        raise ModelError(f"{name}: not torchvision {arch} weights ({detail}{', ...' if len(missing or unexpected) > 3 else ''})")
    bad = [k for k in needed if state[k].shape != own[k].shape]
    if bad:
        k = bad[0]
        raise ModelError(f"{name}: not torchvision {arch} weights ({k} is {tuple(state[k].shape)}, expected {tuple(own[k].shape)})")
    module.load_state_dict(state, strict=False)


_LARGE_DROP = {"alexnet": "5", "vgg16": "23", "googlenet": "maxpool3"}  # the pooling layer large_feature_map drops


def _trunk(arch: str, backbone_weights: str | os.PathLike | None, large_feature_map: bool = False
           ) -> tuple[nn.Module, int]:
    """The kept part of a torchvision backbone and its output channels (one pooling layer fewer
    with ``large_feature_map``: stride 8 instead of 16)."""
    trunk, channels = _full_trunk(arch, backbone_weights)
    if large_feature_map:
        trunk = nn.Sequential(OrderedDict((n, m) for n, m in trunk.named_children() if n != _LARGE_DROP[arch]))
    return trunk, channels


def _full_trunk(arch: str, backbone_weights: str | os.PathLike | None) -> tuple[nn.Module, int]:
    if arch == "alexnet":
        tv = torchvision.models.alexnet(weights=None)
        if backbone_weights is not None:
            load_backbone(tv, backbone_weights, arch, ("features.",))
        else:  # torchvision leaves AlexNet at PyTorch's default init, which barely trains from scratch
            for m in tv.features:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        return tv.features[:12], 256  # conv1..conv5 + ReLU; features[12] is pool5
    if arch == "vgg16":
        tv = torchvision.models.vgg16(weights=None)
        if backbone_weights is not None:
            load_backbone(tv, backbone_weights, arch, ("features.",))
        return tv.features[:30], 512  # conv1_1..conv5_3 + ReLU; features[30] is pool5
    if arch == "googlenet":
        tv = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=backbone_weights is None)
        if backbone_weights is not None:
            load_backbone(tv, backbone_weights, arch, tuple(f"{n}." for n in _GOOGLENET_KEPT))
        return nn.Sequential(OrderedDict((n, getattr(tv, n)) for n in _GOOGLENET_KEPT)), 832
    raise ModelError(f"no paper backbone '{arch}'")


def load_full_weights(module: nn.Module, path: str | os.PathLike, name: str) -> None:
    """Load a state dict of the whole net (one-line ``ModelError`` naming the file on mismatch)."""
    state = read_state_dict(path, f"{name} weights")
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"{os.fspath(path)}: weights do not fit architecture '{name}' ({one_line(err, 160)})") from None


def build_paper_net(name: str, arch: str, convs: int, pooling: Pooling, *, num_classes: int = 1000,
                    backbone_weights: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                    width: int = 1024, dropout: float = 0.0, large_feature_map: bool = False) -> CamNet:
    """Build one of the paper's nets as a :class:`CamNet` (see the module docstring)."""
    trunk, channels = _trunk(arch, backbone_weights, bool(large_feature_map))
    module = GapNet(trunk, channels, num_classes, width=width, convs=convs, pooling=pooling, dropout=dropout)
    if weights is not None:
        load_full_weights(module, weights, name)
    pre = GOOGLENET_PREPROCESSING if arch == "googlenet" else Preprocessing()
    pre = Preprocessing(shape=pre.shape, mean=pre.mean, std=pre.std)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "width": width, "dropout": dropout}
    if convs != _DEFAULT_CONVS[name]:
        kwargs["convs"] = convs
    if large_feature_map:
        kwargs["large_feature_map"] = True
    if num_classes == 1000:
        names = imagenet_classes()
    else:
        names = []
    return CamNet(module=module, name=name, class_names=names, preprocessing=pre, head=module.camloc_head(),
                  arch_kwargs=kwargs)


_PAPER = {
    # name: (torchvision backbone, added 3x3 convs, description)
    "alexnet": ("alexnet", 1, "AlexNet-{P}: AlexNet to conv5 (13x13 maps), 3x3x1024 conv, {P}, linear"),
    "alexnet_star": ("alexnet", 3, "AlexNet*-{P}: AlexNet to conv5, three 3x3x1024 convs, {P}, linear"),
    "vgg16": ("vgg16", 1, "VGG16-{P}: VGG16 to conv5_3 (14x14 maps), 3x3x1024 conv, {P}, linear"),
    "googlenet": ("googlenet", 1, "GoogLeNet-{P}: GoogLeNet to inception4e (14x14 maps), 3x3x1024 conv, {P}, linear"),
}
_DEFAULT_CONVS: dict[str, int] = {}


def _make_builder(name: str, arch: str, default_convs: int, pooling: Pooling, doc: str):
    def builder(*, num_classes: int = 1000, backbone_weights: str | os.PathLike | None = None,
                weights: str | os.PathLike | None = None, width: int = 1024, convs: int = default_convs,
                dropout: float = 0.0, large_feature_map: bool = False) -> CamNet:
        return build_paper_net(name, arch, convs, pooling, num_classes=num_classes,
                               backbone_weights=backbone_weights, weights=weights, width=width, dropout=dropout,
                               large_feature_map=large_feature_map)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return builder


def _register_paper_nets() -> None:
    for base, (arch, convs, text) in _PAPER.items():
        for pooling, suffix in (("avg", "gap"), ("max", "gmp")):
            name = f"{base}_{suffix}"
            _DEFAULT_CONVS[name] = convs
            doc = text.format(P=suffix.upper())
            register(name, doc)(_make_builder(name, arch, convs, pooling, doc))


_register_paper_nets()
