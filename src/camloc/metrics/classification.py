"""Classification error: top-1 and top-5, in percent.

``top-k error = 100 * (1 - #{images whose true class is among the k highest scores} / #images)``,
ties broken by ``torch.topk`` (index order among equal scores is not defined; use distinct
scores when it matters). With fewer than k classes, top-k is top-C.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from camloc.metrics.base import Evaluator


class ClassificationEvaluator(Evaluator):
    """Counts top-k hits per batch of logits.

    Example:
        >>> ev = ClassificationEvaluator()
        >>> ev.accumulate(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
        >>> ev.compute()["top1_cls_error"]
        50.0
    """

    name = "classification"

    def __init__(self, ks: Iterable[int] = (1, 5)) -> None:
        super().__init__()
        self.ks = sorted({int(k) for k in ks})
        self._state = {"hits": np.zeros(len(self.ks), np.int64), "count": np.zeros(1, np.int64)}

    def accumulate(self, logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | Iterable[int]) -> None:
        """``logits (B, C)``, ``labels (B,)`` class indices."""
        logits = torch.as_tensor(logits).detach().float().cpu()
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).view(-1)
        if logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match")
        kmax = min(max(self.ks), logits.shape[1])
        top = logits.topk(kmax, dim=1).indices
        hit_at = (top == labels[:, None]).long()
        for i, k in enumerate(self.ks):
            self._state["hits"][i] += int(hit_at[:, : min(k, kmax)].sum())
        self._state["count"][0] += labels.shape[0]

    def compute(self) -> dict[str, Any]:
        n = int(self._state["count"][0])
        if n == 0:
            raise ValueError("no image was evaluated (empty split?)")
        out: dict[str, Any] = {}
        for i, k in enumerate(self.ks):
            out[f"top{k}_cls_error"] = 100.0 * (1.0 - self._state["hits"][i] / n)
        out["num_images"] = n
        return out
