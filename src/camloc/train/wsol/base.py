"""What every WSOL method shares: the training step's shape (:class:`Method`, which is plain CAM
training), the parts of a GAP net the methods reach into, and the label's normalized class map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camloc.errors import ConfigError


@dataclass
class GapParts:
    """A GAP net as ``trunk -> extra -> pool -> head``, ``head`` ending in the linear layer
    ``fc`` (camloc's paper nets and WSOL backbones, :class:`camloc.models.paper.GapNet`, and the
    Fashion-MNIST nets, :class:`camloc.models.fashion.FashionNet`)."""

    trunk: nn.Module
    extra: nn.Module
    pool: nn.Module
    head: Callable[[Tensor], Tensor]
    fc: nn.Linear
    trunk_channels: int

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(trunk features, last features, logits)``."""
        t = self.trunk(x)
        f = self.extra(t)
        return t, f, self.head(self.pool(f))


def gap_parts(net: nn.Module, method: str) -> GapParts:
    """The parts of ``net``; a one-line :class:`ConfigError` when it has none."""
    if not all(hasattr(net, n) for n in ("trunk", "extra", "pool", "fc")):
        parts = None
    elif isinstance(getattr(net, "classifier", None), nn.Linear) and not isinstance(net.fc, nn.Linear):
        parts = (lambda p: net.classifier(net.fc(p)), net.classifier)  # FashionNet: fc = flatten + dropout
    elif isinstance(net.fc, nn.Linear):
        drop = getattr(net, "dropout", nn.Identity())
        parts = (lambda p: net.fc(drop(p.flatten(1))), net.fc)
    else:
        parts = None
    if parts is None or not isinstance(net.pool, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        raise ConfigError(f"config: wsol_method '{method}' needs a GAP net built as trunk, added convs, global pooling "
                          f"and a linear classifier (camloc's *_gap nets), not {type(net).__name__}")
    head, fc = parts
    convs = [m for m in net.extra.modules() if isinstance(m, nn.Conv2d)]
    channels = convs[0].in_channels if convs else fc.in_features
    return GapParts(net.trunk, net.extra, net.pool, head, fc, channels)


def label_map(features: Tensor, fc: nn.Linear, labels: Tensor) -> Tensor:
    """The class activation map of each image's label, ``sum_k w_k^y f_k``, min-max normalized
    to [0, 1] per image: ``(B, K, h, w) -> (B, h, w)``."""
    m = torch.einsum("bkhw,bk->bhw", features.float(), fc.weight[labels].float())
    flat = m.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1)
    hi = flat.max(1).values.view(-1, 1, 1)
    return (m - lo) / (hi - lo).clamp_min(1e-12)


class Method(nn.Module):
    """CAM: the plain step, cross-entropy of the net's logits. Other methods override
    :meth:`attach` (build branches or hooks for this net) and :meth:`step`; their parameters are
    this module's, trained with the net's added layers and kept in ``last.pt``'s training state."""

    name = "cam"

    def __init__(self, **options: object) -> None:
        super().__init__()
        self.options = dict(options)

    def attach(self, net: nn.Module) -> None:
        """Called once with the net before training (its classes known)."""

    def detach_net(self) -> None:
        """Undo what :meth:`attach` did to the net itself (hooks)."""

    def step(self, net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, loss)`` of one training batch."""
        logits = net(x)
        return logits, F.cross_entropy(logits.float(), y)


class WsolStep(nn.Module):
    """The net and its method as one module (what DistributedDataParallel wraps): ``(x, y) ->
    (logits, loss)``."""

    def __init__(self, net: nn.Module, method: Method) -> None:
        super().__init__()
        self.net = net
        self.method = method

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.method.step(self.net, x, y)
