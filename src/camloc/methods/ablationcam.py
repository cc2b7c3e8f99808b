"""Ablation-CAM (Desai and Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional
Network via Gradient-free Localization", WACV 2020): channels weighted by the drop of the class
score when each is removed.

``alpha_k^c = (y_c - y_c^k) / y_c``, where ``y_c`` is the class score (logit) and ``y_c^k`` the
score with channel ``k`` of the target layer set to zero; ``M_c = ReLU(sum_k alpha_k^c A_k)``.

Two ways to get ``y_c^k``:

- **explicit**: one forward pass per channel, the target layer's output replaced by a batch of
  copies each with one channel zeroed. The layers before the target run once per image (a hook
  expands their output to the chunk), the rest on ``K`` copies, chunked under ``max_mb``; where
  a later layer cannot take the expanded batch against an earlier one, the input is repeated.
- **pooled** (CAM-headed nets at their feature layer: global average or max pooling + one
  linear layer): the score is ``y_c = sum_k w_k^c p_k + b_c`` over the pooled vector ``p``, and
  a zero channel pools to zero, so ``y_c^k = y_c - w_k^c p_k`` and ``alpha_k^c = w_k^c p_k / y_c``
  *exactly*, with no forward pass beyond the one that reads the features (``pooled=None``, the
  default, takes this path wherever it applies; the ablated channel is the CAM features', after
  the head's ``post`` such as DenseNet's final ReLU or a folded norm on the pooled vector).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.methods.base import Net, default_head, module_of, resolve_layer
from camloc.methods.perturbation import (DEFAULT_MAX_MB, PerturbationMethod, chunk_size, chunks,
                                         forward_activations)
from camloc.models.net import CamNet, evaluating


def pooled_head(net: Net, layer: str | nn.Module | None):  # type: ignore[no-untyped-def]
    """The head whose pooled vector can be ablated exactly, or ``None``."""
    if layer is not None or (isinstance(net, CamNet) and (net.probe is not None or getattr(net, "cam_refused", False))):
        return None
    return default_head(net)


class AblationCAM(PerturbationMethod):
    name = "ablationcam"

    def __init__(self, layer: str | nn.Module | None = None, max_mb: float = DEFAULT_MAX_MB,
                 pooled: bool | None = None) -> None:
        super().__init__(layer, max_mb)
        self.pooled = pooled
        self._expand_ok: dict[int, bool] = {}

    @torch.no_grad()
    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        head = pooled_head(net, self.layer)
        if self.pooled and head is None:
            raise MethodError(f"{self.name}: pooled ablation needs a CAM head (GAP or GMP + linear) at the default layer")
        if self.pooled is False or head is None:
            return super().maps(net, x, classes)
        from camloc.extract import pool

        _, a = forward_activations(net, x, None)
        p = pool(a, head.pooling)  # (B, K)
        w = head.classifier.weight.to(a.dtype)  # (C, K)
        y = nn.functional.linear(p, w, head.bias().to(a.dtype))  # (B, C)
        wc = w[classes]  # (B, k, K)
        alpha = wc * p[:, None, :] / y.gather(1, classes)[..., None]
        return torch.einsum("bjk,bkhw->bjhw", alpha, a).clamp_min(0)

    def weights(self, net: Net, x1: Tensor, a1: Tensor, logits1: Tensor, classes1: Tensor) -> Tensor:
        scores = self.ablated_scores(net, x1, a1.shape[0])  # (K, C)
        y = logits1[classes1]  # (k,)
        return (y[:, None] - scores[:, classes1].T) / y[:, None]

    def ablated_scores(self, net: Net, x1: Tensor, k: int) -> Tensor:
        """``(K, C)``: the logits of ``x1`` with each channel of the target layer zeroed."""
        model = module_of(net)
        head = default_head(net) if self.layer is None else None
        target, where = (head.feature_module, head.capture) if head is not None else resolve_layer(net, self.layer)
        size = chunk_size(model, x1, self.max_mb)
        out = []
        key = id(model)
        with evaluating(model), torch.no_grad():
            for s in chunks(k, size):
                n = s.stop - s.start
                channels = torch.arange(s.start, s.stop, device=x1.device)
                expand = self._expand_ok.get(key, True)
                try:
                    out.append(self._forward(model, target, where, x1, n, channels, expand))
                except RuntimeError:
                    if not expand:
                        raise
                    self._expand_ok[key] = False
                    out.append(self._forward(model, target, where, x1, n, channels, False))
        return torch.cat(out)

    @staticmethod
    def _forward(model: nn.Module, target: nn.Module, where: str, x1: Tensor, n: int, channels: Tensor,
                 expand: bool) -> Tensor:
        from camloc.methods.base import logits_of

        def ablate(v: Tensor) -> Tensor:
            v = v.expand(n, *v.shape[1:]).clone() if v.shape[0] == 1 else v.clone()
            v[torch.arange(n, device=v.device), channels] = 0
            return v

        def pre_hook(_m: nn.Module, args: tuple) -> tuple:
            return (ablate(args[0]), *args[1:])

        def hook(_m: nn.Module, _args: tuple, out: Tensor) -> Tensor:
            return ablate(out)

        handle = target.register_forward_pre_hook(pre_hook) if where == "input" else target.register_forward_hook(hook)
        try:
            inp = x1 if expand else x1.expand(n, *x1.shape[1:])
            return logits_of(model(inp))
        finally:
            handle.remove()
