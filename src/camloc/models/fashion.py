"""Small CPU networks in the spirit of the paper's GAP nets, for the Fashion-MNIST benchmark.

The trunk is ``len(widths)`` stages of 3x3 conv-BN-ReLU (``convs`` convs per stage) with a 2x2
max-pool between stages, so a ``S x S`` canvas gives ``S / 2^(stages-1)`` feature maps (16x16
for the default 64x64 canvas and three stages: stride 4). Then, as in the paper:

* ``fashion_gap``: a 3x3 conv (``head_channels`` units, BN, ReLU) -> global average pooling ->
  one linear layer. CAM is exact: ``mean_xy M_c + b_c == S_c``.
* ``fashion_gmp``: the same with global max pooling (the paper's GMP comparison).
* ``fashion_fc``: the same trunk with a fully connected head (2x2 max-pool, flatten,
  ``fc_hidden``-unit FC-ReLU-dropout twice, linear): a classifier only, for the classification
  comparison; it has no CAM head and says so.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from camloc.errors import HeadError, ModelError, one_line
from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import register
from camloc.models.weights import read_state_dict

FASHION_MEAN = (0.15, 0.15, 0.15)
FASHION_STD = (0.3, 0.3, 0.3)
HEADS = ("avg", "max", "fc")


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FashionNet(nn.Module):
    """A small conv net with a GAP, GMP or FC head (see the module docstring).

    Args:
        head: ``"avg"`` (GAP + linear), ``"max"`` (GMP + linear) or ``"fc"`` (FC stack).
        num_classes: outputs of the classifier.
        widths: channels of each trunk stage.
        convs: 3x3 convs per trunk stage.
        head_channels: units of the conv before pooling (GAP/GMP nets).
        head_kernel: its kernel size (3 as in the paper; 1 keeps the receptive field, and so the
            halo of the maps around an object, smaller).
        in_size: canvas side (the FC head's input size depends on it).
        fc_hidden: units of the FC head's hidden layers.
        dropout: dropout before each linear layer of the FC head (and before the GAP/GMP
            classifier when > 0 there too; the CAM stays exact since dropout is identity at eval).
        bf16: in training mode on CPU, run the forward pass under bfloat16 autocast (about twice
            as fast on CPUs with bfloat16 instructions); evaluation always runs in float32, so
            maps and the exactness of CAM are unaffected.
        channels_last: keep weights and activations in the channels-last memory layout (faster
            convolutions on CPU; numerically the same).
        stride: the maps' stride, a power of two (default ``2^(stages-1)``: a 2x2 max-pool
            between every two stages); a smaller stride drops the last pools, so the maps are
            finer (e.g. 32x32 for a 64x64 canvas with ``stride=2``) at a higher cost.
    """

    def __init__(
        self,
        head: Literal["avg", "max", "fc"] = "avg",
        num_classes: int = 10,
        widths: tuple[int, ...] = (16, 32, 64),
        convs: int = 1,
        head_channels: int = 128,
        head_kernel: int = 3,
        in_size: int = 64,
        fc_hidden: int = 256,
        dropout: float = 0.0,
        bf16: bool = False,
        channels_last: bool = True,
        stride: int = 0,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got '{head}'")
        self.kind = head
        pools = len(widths) - 1 if not stride else int(stride).bit_length() - 1
        if stride and (stride & (stride - 1) or not 0 <= pools <= len(widths) - 1):
            raise ValueError(f"stride must be a power of two up to {2 ** (len(widths) - 1)}, got {stride}")
        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(widths):
            if 0 < i <= pools:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs):
                layers += _conv_bn_relu(cin, w)
                cin = w
        self.trunk = nn.Sequential(*layers)
        side = in_size // 2**pools
        if head == "fc":
            self.extra = nn.Identity()
            self.pool = nn.Sequential(nn.MaxPool2d(2), nn.Flatten())
            flat = cin * (side // 2) ** 2
            self.fc = nn.Sequential(
                nn.Linear(flat, fc_hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(fc_hidden, fc_hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            )
            self.classifier = nn.Linear(fc_hidden, num_classes)
        else:
            if head_kernel not in (1, 3, 5):
                raise ValueError(f"head_kernel must be 1, 3 or 5, got {head_kernel}")
            self.extra = nn.Sequential(*_conv_bn_relu(cin, head_channels, head_kernel))
            self.pool = nn.AdaptiveAvgPool2d(1) if head == "avg" else nn.AdaptiveMaxPool2d(1)
            self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(dropout))
            self.classifier = nn.Linear(head_channels, num_classes)
        self.map_side = side
        self.bf16 = bf16
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def camloc_head(self) -> Head:
        """CAM reads the input of the global pooling and the final linear layer."""
        if self.kind == "fc":
            raise HeadError("fashion_fc: fully connected stack (Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear) "
                            "after the trunk, so CAM is not exact; use fashion_gap/fashion_gmp or --method gradcam")
        return Head(self.pool, self.classifier, "input", pooling=self.kind)

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        fast = self.bf16 and self.training and x.device.type == "cpu"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            out = self.classifier(self.fc(self.pool(self.extra(self.trunk(x)))))
        return out.float()


def _build(head: str, name: str, weights: str | None = None, num_classes: int = 10,
           class_names: list[str] | None = None, **kwargs: Any) -> CamNet:
    module = FashionNet(head=head, num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
    if weights is not None:
        state = read_state_dict(weights, f"{name} weights")
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise ModelError(f"{weights}: cannot load {name} weights ({one_line(err, 160)})") from None
    size = int(kwargs.get("in_size", 64))
    arch_kwargs = {"num_classes": num_classes, **kwargs}
    if head == "fc":
        # A classifier only: its Head names the last linear layer so that training and
        # classification work, but camloc_head() refuses CAM (see FashionNet.camloc_head).
        head_obj = Head(module.fc, module.classifier, "output", pooling="avg")
    else:
        head_obj = module.camloc_head()
    names = list(class_names) if class_names else []  # the caller's labels (a net knows no data set)
    return CamNet(module=module, name=name, class_names=names,
                  preprocessing=Preprocessing(shape=(size, size), mean=FASHION_MEAN, std=FASHION_STD),
                  head=head_obj, arch_kwargs=arch_kwargs)


@register("fashion_gap", "small CPU net for the Fashion-MNIST benchmark: conv trunk, 3x3 conv, GAP, linear")
def fashion_gap(weights: str | None = None, **kwargs: Any) -> CamNet:
    """The GAP net (CAM exact)."""
    return _build("avg", "fashion_gap", weights, **kwargs)


@register("fashion_gmp", "small CPU net for the Fashion-MNIST benchmark: conv trunk, 3x3 conv, GMP, linear")
def fashion_gmp(weights: str | None = None, **kwargs: Any) -> CamNet:
    """The GMP net (maps as the paper's GMP comparison; scores are not the maps' means)."""
    return _build("max", "fashion_gmp", weights, **kwargs)


@register("fashion_fc", "small CPU net for the Fashion-MNIST benchmark: the same trunk with an FC head (no CAM)")
def fashion_fc(weights: str | None = None, **kwargs: Any) -> CamNet:
    """The FC-head classifier (classification comparison only)."""
    return _build("fc", "fashion_fc", weights, **kwargs)
