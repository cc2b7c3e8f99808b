"""SS-CAM (Wang, Naidu et al., "SS-CAM: Smoothed Score-CAM for Sharper Visual Feature
Localization", arXiv 2006.14255, 2020): Score-CAM with its channel scores averaged over noisy
masks.

``alpha_k^c = (1/N) sum_n softmax(f(X * (H_k + delta_n)))_c``, ``delta_n ~ N(0, sigma^2)`` drawn
per pixel, ``H_k`` Score-CAM's mask, ``M_c = ReLU(sum_k alpha_k^c A_k)``. ``n`` samples (default
35) at ``sigma`` (default 2.0) as TorchCAM; ``scores="channel-softmax"`` averages the logits and
takes the softmax over channels (TorchCAM's reading). ``seed`` makes the noise reproducible
(``None``: PyTorch's global generator). ``N K`` forward passes per image, chunked under
``max_mb``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.methods.perturbation import DEFAULT_MAX_MB
from camloc.methods.scorecam import ScoreCAM


class SSCAM(ScoreCAM):
    name = "sscam"
    shares_constant_channels = False  # each channel's mask gets its own noise: no two inputs alike

    def __init__(self, layer: str | nn.Module | None = None, max_mb: float = DEFAULT_MAX_MB,
                 scores: str = "probability", n: int = 35, sigma: float = 2.0, seed: int | None = None,
                 normalize_first: bool = False, align_corners: bool = False) -> None:
        super().__init__(layer, max_mb, scores, normalize_first, align_corners)
        if int(n) < 1 or not sigma >= 0:
            raise MethodError(f"{self.name}: n must be >= 1 and sigma >= 0, got n={n}, sigma={sigma}")
        self.samples = int(n)
        self.sigma = float(sigma)
        self.seed = seed
        self._generator: torch.Generator | None = None

    def weights(self, net, x1, a1, logits1, classes1):  # type: ignore[no-untyped-def]
        self._generator = None
        if self.seed is not None:
            self._generator = torch.Generator(device=x1.device).manual_seed(int(self.seed))
        return super().weights(net, x1, a1, logits1, classes1)

    def inputs(self, x1: Tensor, masks: Tensor, sample: int) -> Tensor:
        noise = torch.randn(masks.shape, generator=self._generator, device=masks.device, dtype=masks.dtype)
        return x1 * (masks + noise * self.sigma)[:, None]
