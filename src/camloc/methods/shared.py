"""Forward and backward passes shared by the methods that map one input.

Inside ``with shared_passes(x):`` the passes that several methods would each run on the same
input ``x`` (the very tensor) run once:

- the forward pass without a graph at a layer (:func:`camloc.methods.base.scores_and_activations`
  with ``grad=False``): CAM, the closed forms of a GAP + linear head (Grad-CAM, XGrad-CAM,
  HiResCAM, Grad-CAM element-wise, Layer-CAM, Grad-CAM++, Eigen-Grad-CAM) and the decomposition
  methods (Eigen-CAM, KPCA-CAM) at the same layer read one forward;
- the forward pass and the backward pass per class column of the gradient methods
  (:func:`camloc.methods.gradients.layer_gradients`) at the same layers, for the class target
  and the same classes: Grad-CAM, XGrad-CAM, HiResCAM, Grad-CAM element-wise, Layer-CAM,
  Grad-CAM++, Eigen-Grad-CAM at an earlier layer share one forward and one backward.

Other inputs (SmoothGrad's noisy copies, the perturbation methods' masked inputs), other targets
(Finer-CAM's contrast) and second derivatives (Shapley-CAM) are not shared. The methods never
write into what they read, so a shared answer is the answer each would compute alone
(``tests/test_methods_shared.py`` checks every method to 1e-5). :func:`camloc.compare.compare`
maps each photo inside this block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from torch import Tensor

T = TypeVar("T")
_STATE: ContextVar[tuple[Tensor, dict] | None] = ContextVar("camloc_shared_passes", default=None)


@contextmanager
def shared_passes(x: Tensor) -> Iterator[dict]:
    """Share the passes of the methods called on ``x`` inside the block; yields the store (its
    ``"hits"`` and ``"misses"`` count the answers reused and computed)."""
    store: dict = {"hits": 0, "misses": 0}
    token = _STATE.set((x, store))
    try:
        yield store
    finally:
        _STATE.reset(token)


def sharing(x: Tensor) -> bool:
    """Whether a :func:`shared_passes` block on this very ``x`` is open."""
    state = _STATE.get()
    return state is not None and state[0] is x


def layer_key(layer: Any) -> Any:
    """A hashable name for a target layer: its dotted name, ``None`` (the default), or the module's id."""
    if layer is None or isinstance(layer, str):
        return layer
    if isinstance(layer, (list, tuple)):
        return tuple(layer_key(v) for v in layer)
    return ("module", id(layer))


def memo(x: Tensor, key: tuple, compute: Callable[[], T]) -> T:
    """``compute()``, or its earlier answer for ``key`` when a :func:`shared_passes` block on
    this very ``x`` (unchanged since) is open."""
    state = _STATE.get()
    if state is None or state[0] is not x:
        return compute()
    store = state[1]
    full = (key, _version(x))
    if full in store:
        store["hits"] += 1
        return store[full]
    store["misses"] += 1
    value = compute()
    store[full] = value
    return value


def seed(x: Tensor, key: tuple, value: Any) -> bool:
    """Give ``key`` the answer ``value`` (computed elsewhere, e.g. by the pipeline's own forward)
    inside an open :func:`shared_passes` block on this very ``x``; ``False`` when none is open."""
    state = _STATE.get()
    if state is None or state[0] is not x:
        return False
    state[1][(key, _version(x))] = value
    return True


def _version(x: Tensor) -> int:
    """``x``'s in-place version counter (an inference-mode tensor keeps none: 0)."""
    try:
        return x._version
    except RuntimeError:
        return 0
