"""The activations and gradients every gradient method reads, in one place.

:func:`layer_gradients` runs one forward pass of the batch and one backward pass per class column
(all images at once: in eval mode images are independent, so the batch sum of the chosen scores
gives each image its own gradient), at one or several target layers, for any
:mod:`~camloc.methods.targets` target.

**The closed form.** At the CAM features of a GAP + linear head, ``S_c = sum_k w_k^c mean_xy A_k + b_c``,
so ``dS_c / dA_k(x, y) = w_k^c / (h w)`` at every cell: no backward pass is needed. With
``closed_form=True`` (the default) and the default layer of such a head and a class target, the
gradients are this constant, broadcast (a view, no copy), after a forward without a graph. Grad-CAM,
XGrad-CAM, HiResCAM, Grad-CAM element-wise, Layer-CAM, Grad-CAM++ and Eigen-Grad-CAM only read
``(A, dS/dA)``, so all of them take it (``tests/test_methods_family.py`` checks each against
autograd). Elsewhere (another layer, a head that is not GAP + linear, another target) autograd runs.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from camloc.hooks import capture
from camloc.methods.base import Net, default_head, logits_of, module_of, resolve_layer, scores_and_activations
from camloc.methods.shared import layer_key, memo, sharing
from camloc.methods.targets import ClassTarget, Target
from camloc.models.net import CamNet, evaluating


@dataclass
class Gradients:
    """``acts[i]``: layer i's activations ``(B, K, h, w)``; ``grads[j][i]``: ``dT_j / dA_i`` for class
    column ``j``; ``closed_form``: whether the gradients came from the head's weights."""

    acts: list[Tensor]
    grads: list[list[Tensor]]
    closed_form: bool = False


def closed_form_weights(net: Net, layer) -> Tensor | None:
    """``W (C, K)`` when ``dS/dA = W[c] / (h w)`` holds at ``layer`` (default layer of a GAP +
    linear head, read through the head's own scores), else ``None``."""
    if layer is not None or getattr(net, "cam_refused", False):
        return None
    head = default_head(net)
    if head is None or head.pooling != "avg":
        return None
    probe = net.probe if isinstance(net, CamNet) else None
    return (probe if probe is not None else head.classifier).weight


def _check4(a: Tensor, what: str) -> None:
    from camloc.errors import MethodError

    if a.dim() != 4:
        raise MethodError(f"{what}: the target layer gives shape {tuple(a.shape)}, not (B, K, h, w)")


def layer_gradients(net: Net, x: Tensor, classes: Tensor, layers: list | None = None, target: Target | None = None,
                    closed_form: bool = True, create_graph: bool = False, what: str = "method") -> Gradients:
    """Activations and per-class gradients at ``layers`` (``None``: the default layer, see
    :func:`camloc.methods.base.scores_and_activations`). ``create_graph`` keeps the graph of the
    gradients (second derivatives: Shapley-CAM). Inside :func:`camloc.methods.shared.shared_passes`,
    a class target's answer is shared by every method that asks for the same layers and classes."""
    target = target or ClassTarget()
    if type(target) is ClassTarget and not create_graph and sharing(x):
        key = ("gradients", id(net), layer_key(layers), bool(closed_form), tuple(classes.shape),
               tuple(classes.flatten().tolist()))
        return memo(x, key, lambda: _layer_gradients(net, x, classes, layers, target, closed_form, False, what))
    return _layer_gradients(net, x, classes, layers, target, closed_form, create_graph, what)


def _layer_gradients(net: Net, x: Tensor, classes: Tensor, layers: list | None, target: Target, closed_form: bool,
                     create_graph: bool, what: str) -> Gradients:
    single = layers is None or list(layers) == [None]
    w = closed_form_weights(net, None) if closed_form and single and type(target) is ClassTarget and not create_graph else None
    if w is not None:
        _, a = scores_and_activations(net, x, None, grad=False)
        _check4(a, what)
        hw = a.shape[-2] * a.shape[-1]
        grads = [[(w[classes[:, j]] / hw).to(a.dtype)[:, :, None, None].expand_as(a)] for j in range(classes.shape[1])]
        return Gradients([a], grads, closed_form=True)
    if single and target.uses_logits:
        out, a = scores_and_activations(net, x, None if layers is None else layers[0])
        acts = [a]
        return _backward(out, acts, classes, target, create_graph, what)
    model = module_of(net)
    targets = [resolve_layer(net, layer) for layer in (layers or [None])]
    with evaluating(model), torch.enable_grad(), ExitStack() as stack:
        stores = [stack.enter_context(capture(m, where)) for m, where in targets]
        out = model(x)
        if target.uses_logits:
            out = logits_of(out)
        for store, (m, _) in zip(stores, targets):
            if "value" not in store:
                raise RuntimeError(f"{type(model).__name__}: the target layer {type(m).__name__} was not run by the forward pass")
        return _backward(out, [s["value"] for s in stores], classes, target, create_graph, what)


def _backward(out, acts: list[Tensor], classes: Tensor, target: Target, create_graph: bool, what: str) -> Gradients:
    for a in acts:
        _check4(a, what)
    grads = []
    with torch.enable_grad():
        for j in range(classes.shape[1]):
            s = target(out, classes[:, j]).sum()
            gs = torch.autograd.grad(s, acts, retain_graph=True, create_graph=create_graph, allow_unused=True)
            grads.append([torch.zeros_like(a) if g is None else g for g, a in zip(gs, acts)])
    return Gradients(acts, grads)


def layer_list(layer: str | nn.Module | None, layers: list | None) -> list | None:
    """The ``layers`` option (a list, or a comma string) else ``[layer]``; ``None`` for the default."""
    if layers is not None:
        if isinstance(layers, str):
            layers = [s for s in layers.split(",") if s]
        return list(layers)
    return None if layer is None else [layer]
