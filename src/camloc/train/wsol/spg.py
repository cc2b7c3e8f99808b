"""Self-Produced Guidance (Zhang et al., ECCV 2018), as the CVPR 2020 benchmark trains it: three
pixel heads learn foreground/background seed masks next to the classifier.

- B2 (3x3 conv, ReLU, 1x1 conv on the trunk's features) learns the seed mask of the label's
  normalized class map (foreground above ``threshold_1h``, background below ``threshold_1l``);
- B1 (1x1 conv on the trunk's features) learns the seed mask of ``sigmoid(B2)``
  (``threshold_2h`` / ``threshold_2l``);
- C (3x3 conv, ReLU, 1x1 conv on the last features) learns the seed mask of the fused
  ``(sigmoid(B1) + sigmoid(B2)) / 2`` (``threshold_3h`` / ``threshold_3l``).

Every mask is taken at the input's resolution (maps upsampled bilinearly), pixels between the two
thresholds are ignored, and when fewer pixels than 30 per 224x224 clear the high threshold the
foreground is the pixels above 0.7 times the map's maximum. Loss: ``CE + loss_weight_b *
(BCE(B2) + BCE(B1)) + loss_weight_c * BCE(C)``. Test-time map: the classifier's CAM (the heads
only shape the shared features during training and are not part of the checkpoint's net)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camloc.train.wsol.base import Method, gap_parts, label_map


def seed_mask(attention: Tensor, high: float, low: float) -> Tensor:
    """``(B, H, W)`` of 1 (foreground: ``> high``), 0 (background: ``< low``, which wins) and
    -1 (ignored) from ``attention`` in [0, 1]."""
    b, h, w = attention.shape
    min_fg = max(1, round(30 * h * w / 224 ** 2))
    fg = attention > high
    few = fg.flatten(1).sum(1) < min_fg
    if bool(few.any()):
        peak = attention.flatten(1).max(1).values.view(-1, 1, 1)
        fg = torch.where(few.view(-1, 1, 1), attention > 0.7 * peak, fg)
    mask = torch.full_like(attention, -1.0)
    mask[fg] = 1.0
    mask[attention < low] = 0.0
    return mask


def masked_bce(logits: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of ``logits`` (B, H, W) on the pixels ``mask`` labels (0 or 1)."""
    keep = mask >= 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[keep].float(), mask[keep])


def _head(channels: int, mid: int | None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(channels, mid, 3, 1, 1), nn.ReLU(), nn.Conv2d(mid, 1, 1)] if mid \
        else [nn.Conv2d(channels, 1, 1)]
    return nn.Sequential(*layers)


class SPG(Method):
    name = "spg"

    def attach(self, net: nn.Module) -> None:
        parts = gap_parts(net, self.name)
        self.b1 = _head(parts.trunk_channels, None)
        self.b2 = _head(parts.trunk_channels, min(parts.trunk_channels, 512))
        self.c = _head(parts.fc.in_features, min(parts.fc.in_features, 512))

    def step(self, net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        o = self.options
        parts = gap_parts(net, self.name)
        t, f, logits = parts.forward(x)
        size = x.shape[2:]

        def up(m: Tensor) -> Tensor:
            return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0]

        attention = up(label_map(f.detach(), parts.fc, y)[:, None])
        b1, b2, c = up(self.b1(t)), up(self.b2(t)), up(self.c(f))
        p1, p2 = torch.sigmoid(b1.detach().float()), torch.sigmoid(b2.detach().float())
        loss_b = masked_bce(b2, seed_mask(attention, o["threshold_1h"], o["threshold_1l"])) + \
            masked_bce(b1, seed_mask(p2, o["threshold_2h"], o["threshold_2l"]))
        loss_c = masked_bce(c, seed_mask((p1 + p2) / 2, o["threshold_3h"], o["threshold_3l"]))
        loss = F.cross_entropy(logits.float(), y) + float(o["loss_weight_b"]) * loss_b + \
            float(o["loss_weight_c"]) * loss_c
        return logits, loss
