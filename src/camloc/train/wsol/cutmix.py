"""CutMix (Yun et al., ICCV 2019): with probability ``prob`` a batch gets, in every image, a box
cut from another image of the batch (a random permutation); the box's area is ``1 - lam`` with
``lam ~ Beta(beta, beta)`` (clipped by the border), and the loss mixes the two labels by area:
``lam' CE(y) + (1 - lam') CE(y[perm])`` with ``lam'`` the share of the image left unchanged."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camloc.train.wsol.base import Method


def cut_box(height: int, width: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: a box of sides ``sqrt(1 - lam)`` times the image's, centred at
    ``(cy, cx)`` and clipped to the image."""
    r = math.sqrt(1.0 - lam)
    ch, cw = int(height * r), int(width * r)
    y0, y1 = min(max(cy - ch // 2, 0), height), min(max(cy + ch // 2, 0), height)
    x0, x1 = min(max(cx - cw // 2, 0), width), min(max(cx + cw // 2, 0), width)
    return y0, y1, x0, x1


def cutmix(x: Tensor, y: Tensor, perm: Tensor, box: tuple[int, int, int, int]) -> tuple[Tensor, Tensor, Tensor, float]:
    """``(mixed images, y, y[perm], lam')``: the box of each image replaced by image ``perm[i]``'s;
    ``lam'`` is the unchanged share of the area."""
    y0, y1, x0, x1 = box
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (x.shape[2] * x.shape[3])
    return out, y, y[perm], lam


class CutMix(Method):
    name = "cutmix"

    def step(self, net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        beta, prob = float(self.options["beta"]), float(self.options["prob"])
        if float(torch.rand(())) >= prob:
            return super().step(net, x, y)
        lam = float(torch.distributions.Beta(torch.tensor(beta), torch.tensor(beta)).sample())
        perm = torch.randperm(x.shape[0]).to(x.device)
        cy, cx = int(torch.randint(x.shape[2], ())), int(torch.randint(x.shape[3], ()))
        mixed, ya, yb, lam = cutmix(x, y, perm, cut_box(x.shape[2], x.shape[3], lam, cy, cx))
        logits = net(mixed)
        loss = lam * F.cross_entropy(logits.float(), ya) + (1.0 - lam) * F.cross_entropy(logits.float(), yb)
        return logits, loss
