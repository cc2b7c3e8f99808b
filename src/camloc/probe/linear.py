"""The fitted probe, :class:`Probe`: a linear classifier on a backbone's pooled features, what
:mod:`camloc.probe.fit` makes and :mod:`camloc.probe.files` saves, loads and attaches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class Probe:
    """A linear classifier on a backbone's pooled features: ``S = weight @ F + bias``.

    Attributes:
        backbone: the backbone's registry name (``CamNet.name``).
        feature_dim: ``K``, the width of the pooled features.
        weight: ``(C, K)`` float32 weights acting on the raw pooled features.
        bias: ``(C,)`` float32 biases.
        class_names: the ``C`` class names.
        classifier: ``"svm"`` or ``"logreg"``.
        C: the regularization constant chosen on the validation split.
        backbone_sha256: hash of the backbone weights the features came from.
        info: what the fit measured (accuracies per C, sizes), JSON-able.
        preprocessing: the backbone's preprocessing (``Preprocessing.to_dict()``) when the
            features were extracted; :func:`attach_probe` gives it back to the net.
    """

    backbone: str
    feature_dim: int
    weight: np.ndarray
    bias: np.ndarray
    class_names: list[str]
    classifier: str = "svm"
    C: float = 1.0
    backbone_sha256: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def decision(self, x: np.ndarray) -> np.ndarray:
        """``(N, K)`` pooled features -> ``(N, C)`` scores ``x @ weight.T + bias`` (float64)."""
        return np.asarray(x, np.float64) @ self.weight.astype(np.float64).T + self.bias.astype(np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decision(x).argmax(axis=1)

    def linear(self) -> nn.Linear:
        """The probe as an ``nn.Linear(K, C)`` (what :attr:`CamNet.probe` holds)."""
        layer = nn.Linear(self.feature_dim, self.num_classes)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.asarray(self.weight, np.float32)))
            layer.bias.copy_(torch.from_numpy(np.asarray(self.bias, np.float32)))
        return layer.requires_grad_(False).eval()
