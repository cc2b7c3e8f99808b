"""What the perturbation methods share: the target layer's activations from one forward pass
without gradients, the channels' masks, and forward passes over many masked inputs in chunks
sized to a memory cap.

Score-CAM, SS-CAM and IS-CAM (:mod:`~camloc.methods.scorecam`, ``sscam``, ``iscam``) weigh the
channels ``A_k`` of the target layer by the class score of the input masked by each channel;
Ablation-CAM (:mod:`~camloc.methods.ablationcam`) by the drop of the score when the channel is
zeroed. Each needs one forward pass per channel (and per sample); the masked inputs of many
channels go through the network together, in chunks whose forward pass stays under
``max_mb`` megabytes (estimated once per net and input shape from the sizes of every module's
output for one image), so memory is flat in the batch and the number of channels.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.hooks import capture
from camloc.methods.engine import run_pass
from camloc.methods.shared import layer_key
from camloc.methods.base import MapMethod, Net, default_head, logits_of, module_of, resolve_layer
from camloc.models.net import evaluating
from camloc.models.token_grid import token_grid

DEFAULT_MAX_MB = 512.0
"""The default memory cap of one chunk's forward pass, in megabytes."""

_ITEM_BYTES: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], int]]" = weakref.WeakKeyDictionary()
"""Per net (held weakly: a new net never inherits a freed one's estimate) and input shape."""


def forward_activations(net: Net, x: Tensor, layer: str | nn.Module | None) -> tuple[Tensor, Tensor]:
    """One forward pass without gradients: ``(logits (B, C), activations A (B, K, h, w))`` at the
    same target layer the gradient methods read (:func:`camloc.methods.base.resolve_layer`; at the
    default layer of a CAM-headed net, the CAM features after the head's ``post``)."""
    return run_pass(module_of(net), ("activations", layer_key(layer)), (module_of(net),), lambda z: _forward_activations(net, z, layer), x)


def _forward_activations(net: Net, x: Tensor, layer: str | nn.Module | None) -> tuple[Tensor, Tensor]:
    model = module_of(net)
    head = default_head(net) if layer is None else None
    grid = token_grid(model) if layer is None and (head is None or getattr(net, "cam_refused", False)) else None
    with evaluating(model), torch.no_grad():
        if grid is not None:
            with grid.capture(x) as store:
                out = logits_of(model(x))
            return out, store["value"].detach()
        target, where = (head.feature_module, head.capture) if head is not None else resolve_layer(net, layer)
        with capture(target, where) as store:
            out = logits_of(model(x))
        if "value" not in store:
            raise RuntimeError(f"{type(model).__name__}: the target layer was not run by the forward pass")
        a = store["value"]
        if head is not None and head.post is not None:
            a = head.post(a)
    if a.dim() != 4:
        raise MethodError(f"the target layer gives shape {tuple(a.shape)}, not (B, K, h, w)")
    return out, a.detach()


def channel_masks(a: Tensor, shape: tuple[int, int], normalize_first: bool = False,
                  align_corners: bool = False) -> Tensor:
    """Each channel of ``a (K, h, w)`` upsampled (bilinear) to ``shape`` and min-max scaled to
    [0, 1] -> ``(K, H, W)``; a constant channel gives a zero mask (decided on the channel itself,
    not on its upsampled copy, whose rounding is not constant).

    By default the upsampled channel is scaled (the Score-CAM paper's order, with half-pixel
    centres as camloc upsamples every map); ``normalize_first`` scales the channel before
    upsampling and ``align_corners`` uses corner-aligned sampling (what some peers do, see
    docs/methods.md)."""

    def minmax(t: Tensor) -> Tensor:
        flat = t.flatten(1)
        lo = flat.amin(1)[:, None, None]
        span = (flat.amax(1) - flat.amin(1))[:, None, None]
        return torch.where(span > 0, (t - lo) / span.clamp_min(torch.finfo(t.dtype).tiny), torch.zeros_like(t))

    flat = a.flatten(1)
    constant = (flat.amax(1) == flat.amin(1))[:, None, None]
    if normalize_first:
        a = minmax(a)
    up = F.interpolate(a[None], size=shape, mode="bilinear", align_corners=align_corners)[0]
    # a constant channel stays a zero mask: its upsampled copy can differ in the last bit from cell to
    # cell, and scaling that rounding to [0, 1] would make a mask of noise
    return torch.where(constant, torch.zeros_like(up), up if normalize_first else minmax(up))


def item_bytes(model: nn.Module, x1: Tensor) -> int:
    """Bytes of every module's output in a forward pass of one image ``x1 (1, 3, H, W)`` (cached
    per model and shape): what one more item in a chunk costs, roughly."""
    known = _ITEM_BYTES.setdefault(model, {})
    key = tuple(x1.shape)
    if key not in known:
        total = [x1.numel() * x1.element_size()]

        def hook(_m: nn.Module, _a: tuple, out: object) -> None:
            if isinstance(out, Tensor):
                total[0] += out.numel() * out.element_size()

        handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
        try:
            with evaluating(model), torch.no_grad():
                model(x1)
        finally:
            for h in handles:
                h.remove()
        known[key] = max(total[0], 1)
    return known[key]


def chunk_size(model: nn.Module, x1: Tensor, max_mb: float) -> int:
    """How many inputs like ``x1`` one forward pass may take under ``max_mb`` megabytes (>= 1)."""
    if not max_mb > 0:
        raise MethodError(f"max_mb must be positive, got {max_mb}")
    return max(1, int(max_mb * 2**20 // item_bytes(model, x1)))


def chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def logits(model: nn.Module, z: Tensor) -> Tensor:
    """The logits ``(n, C)`` of a chunk of (masked) inputs, without gradients, on the engine in
    force (:mod:`camloc.methods.engine`)."""
    with evaluating(model), torch.no_grad():
        return run_pass(model, "logits", (model,), lambda v: (logits_of(model(v)),), z)[0]


class PerturbationMethod(MapMethod):
    """A map ``M_c = ReLU(sum_k alpha_k^c A_k)`` with channel weights from forward passes of
    perturbed inputs; subclasses give :meth:`weights` for one image."""

    def __init__(self, layer: str | nn.Module | None = None, max_mb: float = DEFAULT_MAX_MB) -> None:
        if not max_mb > 0:
            raise MethodError(f"{self.name}: max_mb must be positive, got {max_mb}")
        self.layer = layer
        self.max_mb = float(max_mb)

    def weights(self, net: Net, x1: Tensor, a1: Tensor, logits1: Tensor, classes1: Tensor) -> Tensor:
        """``(k, K)`` channel weights for one image ``x1 (1, 3, H, W)`` with activations
        ``a1 (K, h, w)``, its logits ``(C,)`` and the classes asked ``(k,)``."""
        raise NotImplementedError

    @torch.no_grad()
    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        logits, a = forward_activations(net, x, self.layer)
        out = []
        for i in range(x.shape[0]):
            w = self.weights(net, x[i : i + 1], a[i], logits[i], classes[i]).to(a.dtype)
            out.append(torch.einsum("jk,khw->jhw", w, a[i]).clamp_min(0))
        return torch.stack(out)


__all__ = ["DEFAULT_MAX_MB", "PerturbationMethod", "channel_masks", "chunk_size", "forward_activations",
           "item_bytes", "logits"]
