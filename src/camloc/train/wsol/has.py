"""Hide-and-Seek (Singh and Lee, ICCV 2017): square patches of the training image are hidden at
random, so the classifier must find the object's other parts too. Patches are ``grid_size``
pixels a side (the last row and column may be cut by the border) and each is hidden, set to 0 in
the normalized input (the dataset's mean colour), with probability ``drop_rate``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.train.wsol.base import Method


def hide_patches(x: Tensor, grid_size: int, hidden: Tensor) -> Tensor:
    """``x`` (B, C, H, W) with the patches that ``hidden`` (B, ceil(H/g), ceil(W/g), bool) marks set to 0."""
    _, _, h, w = x.shape
    cells = hidden.to(x.device)
    full = cells.repeat_interleave(grid_size, 1).repeat_interleave(grid_size, 2)[:, :h, :w]
    return x * (~full)[:, None].to(x.dtype)


def draw_hidden(batch: int, height: int, width: int, grid_size: int, drop_rate: float) -> Tensor:
    """Which patches to hide: each with probability ``drop_rate`` (torch's global generator)."""
    rows, cols = -(-height // grid_size), -(-width // grid_size)
    return torch.rand(batch, rows, cols) < drop_rate


class HaS(Method):
    name = "has"

    def step(self, net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        g, p = int(self.options["grid_size"]), float(self.options["drop_rate"])
        x = hide_patches(x, g, draw_hidden(x.shape[0], x.shape[2], x.shape[3], g, p))
        return super().step(net, x, y)
