"""What every evaluator shares: per-batch ``accumulate``, ``compute`` at the end, and a state of
counts that adds up across processes (so ``torchrun`` shards can be reduced by a sum)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Evaluator:
    """Base class: subclasses keep their running totals in ``self._state`` (name -> array).

    The state holds only sums (counts, histograms), never per-image lists, so memory stays flat
    as the dataset grows and the states of several processes combine by element-wise addition.
    """

    name = "evaluator"

    def __init__(self) -> None:
        self._state: dict[str, np.ndarray] = {}

    def state(self) -> dict[str, np.ndarray]:
        """The running totals (copies), each a float64 or int64 array."""
        return {k: v.copy() for k, v in self._state.items()}

    def merge(self, other: dict[str, np.ndarray]) -> None:
        """Add another evaluator's :meth:`state` (same configuration) into this one."""
        for k, v in other.items():
            if k not in self._state or self._state[k].shape != np.shape(v):
                raise ValueError(f"{self.name}: cannot merge state {k!r} of another configuration")
            self._state[k] = self._state[k] + np.asarray(v, dtype=self._state[k].dtype)

    def all_reduce(self) -> None:
        """Sum the state over the processes of an initialized ``torch.distributed`` group."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        device = collective_device()
        for k, v in self._state.items():
            t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).to(device)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            self._state[k] = t.cpu().numpy().astype(v.dtype)

    def compute(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def collective_device():
    """Where the tensors of a collective must live in the joined group: this process's current
    CUDA device under NCCL (which moves CUDA tensors only; ``local_device`` sets it to
    ``cuda:LOCAL_RANK``), the CPU otherwise (gloo)."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
