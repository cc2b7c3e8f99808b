"""The one hook mechanism: read a module's input or output during a forward pass.

CAM reads the feature layer with it (:func:`camloc.extract.extract`), the gradient methods read
their target layer with it (:func:`camloc.methods.base.scores_and_activations`). The captured
value stays in the autograd graph (so gradients can be taken with respect to it); the rest of the
forward runs on a copy, so an in-place operation that follows (DenseNet's ``relu_`` after
``features.norm5``) cannot overwrite it. The hook is removed on exit, also on error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from torch import Tensor, nn


@contextmanager
def capture(module: nn.Module, where: Literal["input", "output"] = "output") -> Iterator[dict[str, Tensor]]:
    """Within the block, ``store["value"]`` is ``module``'s first input (``where="input"``) or
    its output (``"output"``) of the latest forward pass.

    Example:
        >>> with capture(net.layer4) as store:
        ...     logits = net(x)
        >>> store["value"].shape
        torch.Size([1, 2048, 7, 7])
    """
    store: dict[str, Tensor] = {}

    def pre_hook(_m: nn.Module, args: tuple) -> tuple | None:
        store["value"] = args[0]
        return (args[0].clone(), *args[1:]) if isinstance(args[0], Tensor) else None

    def hook(_m: nn.Module, _args: tuple, out: object) -> Tensor | None:
        store["value"] = out
        return out.clone() if isinstance(out, Tensor) else None

    if where not in ("input", "output"):
        raise ValueError(f"capture where must be 'input' or 'output', got {where!r}")
    handle = module.register_forward_pre_hook(pre_hook) if where == "input" else module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
