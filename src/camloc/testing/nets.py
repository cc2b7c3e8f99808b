"""A hand-built net with known answers for the fixtures of :mod:`camloc.testing` (doctests,
tutorials, tests).

:func:`colour_net` detects the fixtures' first three palette colours: feature ``f_c =
ReLU(x_c - 0.5)`` on the normalized colour channel ``c`` (red, green, blue), an identity classifier
after global average (or max) pooling, no bias. A fixture image of class ``c`` (``c < 3``) paints
its objects in colour ``c`` on dark noise, so class ``c``'s CAM is exactly its objects.

    >>> import torch, camloc
    >>> net = colour_net()
    >>> x = torch.zeros(1, 3, 64, 64); x[0, 0, 10:20, 30:40] = 1.0   # a red square (normalized)
    >>> out = camloc.cam(net, x, topk=1)
    >>> int(out.classes[0, 0]), out.maps.shape[-2:] == (64, 64)
    (0, True)
"""

from __future__ import annotations

import torch
from torch import nn

from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import load_model


class ColourNet(nn.Module):
    """The three colour detectors (see the module); ``pooling`` is ``"avg"`` (GAP) or ``"max"``."""

    def __init__(self, pooling: str = "avg") -> None:
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"ColourNet: pooling must be 'avg' or 'max', got {pooling!r}")
        self.conv = nn.Conv2d(3, 3, 1)
        self.pool = nn.AdaptiveAvgPool2d(1) if pooling == "avg" else nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(3, 3)
        self.pooling = pooling
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.conv.bias.fill_(-0.5)
            self.fc.weight.copy_(torch.eye(3))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input", pooling=self.pooling)


def colour_net(pooling: str = "avg", shape: tuple[int, int] = (64, 64)) -> CamNet:
    """:class:`ColourNet` as a :class:`camloc.CamNet` (eval mode) that squashes images to
    ``shape`` with ImageNet normalization."""
    return load_model(ColourNet(pooling).eval(), preprocessing=Preprocessing(shape=shape))
