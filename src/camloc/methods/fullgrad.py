"""FullGrad (NeurIPS 2019, "Full-Gradient Representation for Neural Network
Visualization"): the input-gradient plus every layer's bias-gradient,

    S_c(x) = grad_x S_c . x + sum_l grad_{b_l} S_c . b_l                         (completeness)
    M_c    = psi(grad_x S_c * x) + sum_l sum_channels psi(dS_c/dz_l * b_l)

with ``z_l`` the output of a layer with a bias ``b_l`` (a convolution's, or an eval BatchNorm's
implicit ``beta - mu gamma / sqrt(var + eps)``), and ``psi`` = absolute value, min-max over each
image's channels and cells jointly (the paper's code), bilinear upsampling to the input; the map
is at input resolution.

Completeness, and so the method, holds only for a piecewise-linear network: camloc **refuses**
(one line, the reason) a net with a smooth activation or a normalization that is not an eval
BatchNorm (SiLU, GELU, Sigmoid, Tanh, Hardswish, Softmax, LayerNorm, GroupNorm, attention, ...),
and a net without any bias (then FullGrad is the input-gradient alone).
"""

from __future__ import annotations

from contextlib import ExitStack

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.hooks import capture
from camloc.methods.base import MapMethod, Net, logits_of, module_of
from camloc.methods.targets import Target, make_target
from camloc.models.net import evaluating

LINEAR_PIECES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.Hardtanh, nn.MaxPool2d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten,
                 nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.Sequential, nn.ModuleList, nn.ZeroPad2d)

PASS_THROUGH = ("Identity", "ZeroPad2d", "ConstantPad2d", "Conv2dStaticSamePadding", "Conv2dDynamicSamePadding")


def _psi(t: Tensor, shape: tuple[int, int]) -> Tensor:
    t = t.abs().flatten(1)
    t = t - t.amin(dim=1, keepdim=True)
    t = t / (t.amax(dim=1, keepdim=True) + 1e-12)
    return t


def implicit_bias(m: nn.Module) -> Tensor | None:
    if isinstance(m, nn.BatchNorm2d):
        w = m.weight if m.weight is not None else torch.ones_like(m.running_var)
        b = m.bias if m.bias is not None else torch.zeros_like(m.running_var)
        return (b - m.running_mean * w / torch.sqrt(m.running_var + m.eps)).detach()
    if isinstance(m, nn.Conv2d) and m.bias is not None:
        return m.bias.detach()
    return None


def check_exact(model: nn.Module) -> list[nn.Module]:
    """The bias layers; a one-line refusal where completeness does not hold."""
    for name, m in model.named_modules():
        leaf = not any(True for _ in m.children())
        if leaf and not isinstance(m, LINEAR_PIECES) and type(m).__name__ not in PASS_THROUGH:
            raise MethodError(f"fullgrad: {type(model).__name__} has {type(m).__name__} at {name or 'the top'!r}, not "
                              "piecewise linear, so the full-gradient is not complete (not exact); use gradcam or hirescam")
        if isinstance(m, nn.BatchNorm2d) and m.track_running_stats is False:
            raise MethodError(f"fullgrad: {name!r} normalizes with batch statistics, its bias is not fixed (not exact)")
    layers = [m for m in model.modules() if implicit_bias(m) is not None]
    if not layers:
        raise MethodError(f"fullgrad: {type(model).__name__} has no bias in a convolution or BatchNorm, so FullGrad is "
                          "the input-gradient alone; use backprop")
    return layers


class FullGrad(MapMethod):
    name = "fullgrad"
    family = "gradient"

    def __init__(self, target: Target | str | None = None) -> None:
        self.target = make_target(target)

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        model = module_of(net)
        layers = check_exact(model)
        H, W = x.shape[-2:]
        with evaluating(model), torch.enable_grad(), ExitStack() as stack:
            stores = [stack.enter_context(capture(m, "output")) for m in layers]
            inp = x.detach().clone().requires_grad_(True)
            out = model(inp)
            if self.target.uses_logits:
                out = logits_of(out)
            zs = [s["value"] for s in stores]
            biases = [implicit_bias(m) for m in layers]
            maps = []
            for j in range(classes.shape[1]):
                s = self.target(out, classes[:, j]).sum()
                gx, *gz = torch.autograd.grad(s, [inp, *zs], retain_graph=j + 1 < classes.shape[1], allow_unused=True)
                with torch.no_grad():
                    total = _psi(gx * inp, (H, W)).view_as(inp).sum(dim=1)
                    for z, g, b in zip(zs, gz, biases):
                        if g is None:
                            continue
                        t = _psi(g * b.view(1, -1, 1, 1), (H, W)).view_as(g)
                        total += F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False).sum(dim=1)
                maps.append(total)
        return torch.stack(maps, dim=1)
