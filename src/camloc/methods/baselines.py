"""What a localization score is worth without the model: maps that do not read the image.

Both are at the input's resolution and the same for every class; a table that shows them says
how much of a method's score the data's bias (objects near the centre, large boxes) explains.
"""

from __future__ import annotations

import torch
from torch import Tensor

from camloc.errors import MethodError
from camloc.methods._checks import seed as seed_check
from camloc.methods.base import MapMethod, Net


class RandomMap(MapMethod):
    """``random``: i.i.d. uniform values on a grid of ``stride``-pixel cells (32, a CNN's last
    stage), upsampled bilinearly to the input; ``seed`` makes it reproducible (image ``i`` of a
    batch draws from ``seed + i``)."""

    name = "random"
    family = "baseline"

    def __init__(self, seed: int = 0, stride: int = 32) -> None:
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise MethodError(f"random: stride must be an integer >= 1, got {stride!r}")
        self.seed, self.stride = seed_check("random: seed", seed), stride

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        h, w = max(1, H // self.stride), max(1, W // self.stride)
        out = []
        for i in range(x.shape[0]):
            gen = torch.Generator().manual_seed(self.seed + i)
            out.append(torch.rand((classes.shape[1], h, w), generator=gen))
        grid = torch.stack(out).to(x.device)
        return torch.nn.functional.interpolate(grid, size=(H, W), mode="bilinear", align_corners=False)


class CenterGaussian(MapMethod):
    """``center``: ``M(x, y) = exp(-((x - W/2)^2 / (sigma W)^2 + (y - H/2)^2 / (sigma H)^2) / 2)``
    in pixel-centre coordinates, ``sigma`` (default 0.25) a fraction of each side."""

    name = "center"
    family = "baseline"

    def __init__(self, sigma: float = 0.25) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < float("inf"):
            raise MethodError(f"center: sigma must be a finite number > 0, got {sigma!r}")
        self.sigma = float(sigma)

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        ys = (torch.arange(H, dtype=torch.float32) + 0.5 - H / 2) / (self.sigma * H)
        xs = (torch.arange(W, dtype=torch.float32) + 0.5 - W / 2) / (self.sigma * W)
        m = torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)).to(x.device)
        return m.expand(x.shape[0], classes.shape[1], H, W).contiguous()
