"""Adversarial Complementary Learning (Zhang et al., CVPR 2018): branch A is the net's own head
(added convs, GAP, classifier); the trunk's features where A's normalized map of the label is at
least ``threshold`` are erased, and branch B (its own 3x3 conv as wide as A's, GAP and
classifier) must classify what is left. Loss: ``CE(A) + branch_weight * CE(B)``.

Test-time map: branch A's CAM, the net's own (branch B lives only in the training state and is
not part of the checkpoint's net). The benchmark's code takes the pixelwise maximum of A's and B's
normalized maps instead; with the erasing, B's map covers what A's leaves out."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from camloc.train.wsol.base import Method, gap_parts, label_map


def erase(features: Tensor, attention: Tensor, threshold: float) -> Tensor:
    """``features`` (B, K, h, w) set to 0 where ``attention`` (B, h, w, in [0, 1]) >= ``threshold``."""
    return features * (attention < threshold)[:, None].to(features.dtype)


class ACoL(Method):
    name = "acol"

    def attach(self, net: nn.Module) -> None:
        parts = gap_parts(net, self.name)
        convs = [m for m in parts.extra.modules() if isinstance(m, nn.Conv2d)]
        width = parts.fc.in_features
        layers: list[nn.Module] = []
        if convs:
            conv = nn.Conv2d(parts.trunk_channels, width, 3, 1, 1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers = [conv, nn.ReLU()]
        self.branch_b = nn.Sequential(*layers)
        self.fc_b = nn.Linear(width, parts.fc.out_features)
        nn.init.normal_(self.fc_b.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc_b.bias)

    def step(self, net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        parts = gap_parts(net, self.name)
        t, f, logits = parts.forward(x)
        attention = label_map(f.detach(), parts.fc, y)
        fb = self.branch_b(erase(t, attention, float(self.options["threshold"])))
        logits_b = self.fc_b(parts.pool(fb).flatten(1))
        loss = F.cross_entropy(logits.float(), y) + float(self.options["branch_weight"]) * \
            F.cross_entropy(logits_b.float(), y)
        return logits, loss
