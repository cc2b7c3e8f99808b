"""What a map method is: ``method(net, x, classes) -> (B, k, h, w)`` maps, one per class asked.

Gradient methods read any ``nn.Module`` at a chosen *target layer* (a module, or its dotted name
as ``named_modules`` gives it); by default the CAM feature layer when the model has a CAM head,
the patch-token grid that the last block reads for a class-token transformer
(:mod:`camloc.models.token_grid`), else the last ``nn.Conv2d``. They need no linear GAP head,
so they work where CAM is refused (VGG, MobileNetV3, ViT, ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from camloc.hooks import capture
from camloc.methods.engine import current_engine, forward_engine, run_pass
from camloc.methods.shared import layer_key, memo, seed
from camloc.errors import HeadError, MethodError
from camloc.models.heads import Head, find_head
from camloc.models.net import CamNet, evaluating
from camloc.models.token_grid import token_grid

Net = CamNet | nn.Module


class MapMethod(ABC):
    """Base class: subclasses set ``name`` and implement :meth:`maps`."""

    name: ClassVar[str] = ""
    engine: str | None = None
    """What runs the forward passes that need no graph (:mod:`camloc.methods.engine`):
    ``"torch"``, ``"onnxruntime"`` (``get_method(name, engine=...)``), or ``None``: the engine in
    force where the method is called (PyTorch, unless a pipeline on ONNX Runtime calls it)."""

    def __call__(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        """Maps for ``classes (B, k)`` (or ``(k,)``, the same for every image) -> ``(B, k, h, w)``."""
        classes = torch.as_tensor(classes, dtype=torch.long, device=x.device)
        if classes.dim() == 1:
            classes = classes.unsqueeze(0).expand(x.shape[0], -1)
        if classes.shape[0] != x.shape[0]:
            raise MethodError(f"{self.name}: classes for {classes.shape[0]} images, got {x.shape[0]} images")
        if self.engine is None or self.engine == current_engine():
            return self.maps(net, x, classes)
        with forward_engine(self.engine):
            return self.maps(net, x, classes)

    @abstractmethod
    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor: ...


def module_of(net: Net) -> nn.Module:
    return net.module if isinstance(net, CamNet) else net


def logits_of(output: object) -> Tensor:
    """The class scores of a forward output (Inception-style tuples give their first field)."""
    return output if isinstance(output, Tensor) else output[0]  # type: ignore[index]


def default_head(net: Net) -> Head | None:
    """The CAM head of ``net`` (a CamNet's own, else the one :func:`find_head` finds), or ``None``."""
    if isinstance(net, CamNet):
        return net.head
    try:
        return find_head(net)
    except HeadError:
        return None


def resolve_layer(net: Net, layer: str | nn.Module | None) -> tuple[nn.Module, str]:
    """The target module and whether to read its ``"input"`` or ``"output"`` (a ``(module,
    "input"|"output")`` pair is taken as it is)."""
    model = module_of(net)
    if isinstance(layer, tuple) and len(layer) == 2 and isinstance(layer[0], nn.Module) and layer[1] in ("input", "output"):
        return layer
    if isinstance(layer, nn.Module):
        return layer, "output"
    if layer is not None and not isinstance(layer, str):
        raise MethodError(f"target layer must be a module or its dotted name, got {type(layer).__name__} {str(layer)[:40]!r}")
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            from camloc.method_names import close_names

            names = [n for n in modules if n]
            raise MethodError(f"{type(model).__name__}: no layer named {layer[:80]!r}{close_names(layer, names)}"
                              f" ({len(names)} named modules, e.g. {', '.join(names[-3:])})")
        return modules[layer], "output"
    head = default_head(net)
    if head is not None:
        return head.feature_module, head.capture
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__}: no convolution layer to read; pass a target layer")
    return convs[-1], "output"


def scores_and_activations(net: Net, x: Tensor, layer: str | nn.Module | None, grad: bool = True) -> tuple[Tensor, Tensor]:
    """One forward with gradients on: ``(logits (B, C), activations A (B, K, h, w))``, the logits
    a function of ``A`` in the graph.

    At a named layer, ``A`` is its output and the logits are the model's. At the default layer
    (``layer=None`` on a net with a CAM head) ``A`` is the CAM features: the head's ``post``
    (DenseNet's final ReLU) applied to the captured value, and the logits are the head's reading
    of them, ``classifier(pool(A))`` (or the attached probe's): the model's scores for a GAP or
    GMP + linear head, so ``dS/dA`` is the gradient at what the head pools, not at the value
    before a function the network applies again. Without ``post`` or a probe the model's own
    logits are read (the same scores; also right for a stand-in head that only names the layer).
    ``grad=False`` runs the same forward without a graph (the closed forms need no backward); inside
    :func:`camloc.methods.shared.shared_passes` that forward runs once per layer.
    """
    if not grad:
        return memo(x, ("forward", id(net), layer_key(layer)), lambda: _forward(net, x, layer))
    return _scores_and_activations(net, x, layer, grad)


def _forward(net: Net, x: Tensor, layer: str | nn.Module | None) -> tuple[Tensor, Tensor]:
    """The forward without a graph, on the engine in force (:mod:`camloc.methods.engine`)."""
    probe = net.probe if isinstance(net, CamNet) else None
    return run_pass(module_of(net), ("forward", layer_key(layer), probe is not None), (module_of(net), probe),
                    lambda z: _scores_and_activations(net, z, layer, False), x)


def share_forward(net: CamNet, x: Tensor, logits: Tensor, features: Tensor) -> bool:
    """Inside :func:`camloc.methods.shared.shared_passes` on ``x``: the default layer's forward
    without a graph (``scores_and_activations(net, x, None, grad=False)``) takes the answer of
    a forward already run, :func:`camloc.extract.extract`'s ``(features, logits)`` on the same ``x``
    (the same capture, ``post`` and probe). CAM, the closed forms and the decomposition methods at
    the default layer then run no forward of their own. A net whose CAM is refused (its default
    layer is not the head's) is left alone."""
    if getattr(net, "cam_refused", False) or features.dim() != 4:
        return False
    return seed(x, ("forward", id(net), layer_key(None)), (logits, features))


def _scores_and_activations(net: Net, x: Tensor, layer: str | nn.Module | None, grad: bool) -> tuple[Tensor, Tensor]:
    model = module_of(net)
    head = default_head(net) if layer is None else None
    grid = token_grid(model) if layer is None and (head is None or getattr(net, "cam_refused", False)) else None
    if grid is not None:  # a class-token transformer: the patch tokens its last block reads
        with evaluating(model), torch.set_grad_enabled(grad), grid.capture(x) as store:
            out = logits_of(model(x))
        if "value" not in store:
            raise RuntimeError(f"{type(model).__name__}: the last block was not run by the forward pass")
        return out, store["value"]
    target, where = (head.feature_module, head.capture) if head is not None else resolve_layer(net, layer)
    with evaluating(model), torch.set_grad_enabled(grad), capture(target, where) as store:
        out = logits_of(model(x))
        if "value" not in store:
            raise RuntimeError(f"{type(model).__name__}: the target layer was not run by the forward pass")
        a = store["value"]
        probe = net.probe if isinstance(net, CamNet) and head is not None else None
        if head is not None and (head.post is not None or probe is not None):
            from camloc.extract import pool

            if head.post is not None:
                a = head.post(a)
            pooled = pool(a, head.pooling)
            # head.bias(): the classifier's bias, plus W β after a norm on the pooled vector
            # (post then gives the normalized features, see camloc.models.pooled_norm)
            out = probe(pooled) if probe is not None else nn.functional.linear(pooled, head.classifier.weight, head.bias())
    return out, a


def class_gradients(logits: Tensor, activations: Tensor, classes: Tensor) -> list[Tensor]:
    """``d S_c / d A`` for each column of ``classes``: a list of k tensors shaped like ``A``.

    Images are independent in eval mode, so the batch sum of the chosen scores gives every
    image's own gradient in one backward pass per column.
    """
    grads = []
    for j in range(classes.shape[1]):
        s = logits.gather(1, classes[:, j : j + 1]).sum()
        (g,) = torch.autograd.grad(s, activations, retain_graph=True)
        grads.append(g)
    return grads


def previous_stage(net: Net, x: Tensor) -> tuple[nn.Module, str]:
    """The layer one stage before the default one: the input of the shallowest module that takes
    a grid at most twice as fine as the default layer's and gives the default layer's grid (a
    ResNet's ``layer4`` -> ``layer3``'s output; an EfficientNet's first stride-2 block of its last
    stage -> the block before). One forward pass without gradients, hooks on every module."""
    model = module_of(net)
    target, where = resolve_layer(net, None)
    seen: list[tuple[int, int, nn.Module, tuple, tuple]] = []
    depth = {m: name.count(".") + (1 if name else 0) for name, m in model.named_modules()}

    def hook(m: nn.Module, args: tuple, out: object) -> None:
        a = args[0] if args and isinstance(args[0], Tensor) else None
        if a is not None and a.dim() == 4 and isinstance(out, Tensor) and out.dim() == 4:
            seen.append((depth.get(m, 99), len(seen), m, tuple(a.shape[-2:]), tuple(out.shape[-2:])))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with evaluating(model), torch.no_grad(), capture(target, where) as store:
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    if "value" not in store or store["value"].dim() != 4:
        raise MethodError(f"{type(model).__name__}: the default layer gives no (B, K, h, w) grid to find the stage before it")
    gh, gw = store["value"].shape[-2:]
    fits = [(d, i, m) for d, i, m, (ih, iw), (oh, ow) in seen
            if (oh, ow) == (gh, gw) and ih > gh and iw >= gw and ih <= 2 * gh + 1 and iw <= 2 * gw + 1]
    if not fits:
        raise MethodError(f"{type(model).__name__}: no stage before the default layer (a module that takes a finer "
                          f"grid and gives {gh}x{gw}); name the layers (layers=NAME1,NAME2)")
    return min(fits, key=lambda t: (t[0], t[1]))[2], "input"
