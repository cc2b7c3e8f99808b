"""IS-CAM (Naidu et al., "IS-CAM: Integrated Score-CAM for axiomatic-based explanations",
arXiv 2010.03023, 2020): Score-CAM with its channel scores integrated along growing masks.

The paper's Algorithm 1 accumulates the scaled mask, ``M_i = sum_{j=1}^{i} (j / N) H_k``, and
averages the scores of ``X * M_i``: ``alpha_k^c = (1/N) sum_{i=1}^{N} softmax(f(X * M_i))_c``,
``M_c = ReLU(sum_k alpha_k^c A_k)``, with ``H_k`` Score-CAM's mask (so the coefficient of the
last step is ``(N + 1) / 2``, as TorchCAM computes it). ``n`` steps (default 10);
``scores="channel-softmax"`` averages logits and takes the softmax over channels (TorchCAM).
``N K`` forward passes per image, chunked under ``max_mb``.
"""

from __future__ import annotations

from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.methods.perturbation import DEFAULT_MAX_MB
from camloc.methods.scorecam import ScoreCAM


class ISCAM(ScoreCAM):
    name = "iscam"

    def __init__(self, layer: str | nn.Module | None = None, max_mb: float = DEFAULT_MAX_MB,
                 scores: str = "probability", n: int = 10, normalize_first: bool = False,
                 align_corners: bool = False) -> None:
        super().__init__(layer, max_mb, scores, normalize_first, align_corners)
        if int(n) < 1:
            raise MethodError(f"{self.name}: n must be >= 1, got {n}")
        self.samples = int(n)

    def coefficient(self, sample: int) -> float:
        """``sum_{j=1}^{i} j / N`` for step ``i = sample + 1``."""
        i = sample + 1
        return i * (i + 1) / 2 / self.samples

    def inputs(self, x1: Tensor, masks: Tensor, sample: int) -> Tensor:
        return self.coefficient(sample) * (x1 * masks[:, None])
