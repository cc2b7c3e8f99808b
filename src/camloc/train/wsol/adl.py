"""Attention-based Dropout Layer (Choe and Shim, CVPR 2019), parameter-free and active only in
training. On a feature map, the attention is the mean over channels; per batch, with probability
``drop_rate`` the features are multiplied by the drop mask (1 where the attention is below
``threshold`` times its per-image maximum, 0 on the most discriminative part), else by the
importance map ``sigmoid(attention)``.

Placement: after the trunk and after the added convolutions (the last two feature stages, where
the benchmark puts it on its backbones' last blocks). At test time it is the identity, so the
maps are the net's own CAM."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from camloc.train.wsol.base import Method, gap_parts


def adl(features: Tensor, drop_rate: float, threshold: float, u: float) -> Tensor:
    """ADL on ``features`` (B, K, h, w); ``u`` a uniform draw in [0, 1) picks the drop mask when
    ``u + drop_rate >= 1`` (so with probability ``drop_rate``)."""
    att = features.mean(1, keepdim=True)
    if u + drop_rate >= 1.0:
        peak = att.flatten(1).max(1).values.view(-1, 1, 1, 1)
        return features * (att < peak * threshold).to(features.dtype)
    return features * torch.sigmoid(att)


class ADL(Method):
    name = "adl"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._handles: list[Any] = []

    def attach(self, net: nn.Module) -> None:
        parts = gap_parts(net, self.name)
        sites = [parts.trunk] + ([parts.extra] if any(True for _ in parts.extra.parameters()) else [])
        for module in sites:
            self._handles.append(module.register_forward_hook(self._hook))

    def _hook(self, module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
        if not module.training:
            return output
        u = float(torch.rand(()))
        return adl(output, float(self.options["drop_rate"]), float(self.options["threshold"]), u)

    def detach_net(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
