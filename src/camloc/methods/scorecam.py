"""Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
Networks", CVPR Workshops 2020): channels weighted by the score of the input they mask.

Each channel ``A_k`` of the target layer, upsampled to the input and min-max scaled to [0, 1],
masks the input: ``H_k = s(Up(A_k))``, ``X_k = X * H_k``. Its weight is the class score of the
masked input, ``alpha_k^c = softmax(f(X_k))_c`` (the probability, as the authors' code computes
it), and ``M_c = ReLU(sum_k alpha_k^c A_k)`` at the target layer's resolution.
``scores="channel-softmax"`` gives ``alpha^c = softmax_k(f_c(X_k) - f_c(X_b))`` instead, the
paper's Algorithm 1 as TorchCAM and pytorch-grad-cam read it (the baseline ``X_b`` only shifts
every channel alike, so it drops out of the softmax over channels).

One forward pass per channel, shared by every class asked: ``K`` passes per image, the masked
inputs of many channels in one batch, chunked under ``max_mb`` (see
:mod:`camloc.methods.perturbation`). A constant channel (a ReLU's dead unit, about half of the
embedded nets' 1,280 on real photos) masks the input to zero whatever the channel, so the
constant channels share one pass: the maps are unchanged and the passes fewer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.methods.base import Net, module_of
from camloc.methods.perturbation import DEFAULT_MAX_MB, PerturbationMethod, channel_masks, chunk_size, chunks, logits
from camloc.models.net import evaluating

SCORES = ("probability", "channel-softmax")


class ScoreCAM(PerturbationMethod):
    name = "scorecam"

    def __init__(self, layer: str | nn.Module | None = None, max_mb: float = DEFAULT_MAX_MB,
                 scores: str = "probability", normalize_first: bool = False, align_corners: bool = False) -> None:
        super().__init__(layer, max_mb)
        if scores not in SCORES:
            raise MethodError(f"{self.name}: scores must be one of {', '.join(SCORES)}, got {scores!r}")
        self.scores = scores
        self.normalize_first = bool(normalize_first)
        self.align_corners = bool(align_corners)

    def masks(self, a1: Tensor, shape: tuple[int, int]) -> Tensor:
        return channel_masks(a1, shape, self.normalize_first, self.align_corners)

    def inputs(self, x1: Tensor, masks: Tensor, sample: int) -> Tensor:
        """The inputs of one chunk of channel masks ``(n, H, W)`` for ``sample`` (Score-CAM has one)."""
        return x1 * masks[:, None]

    samples = 1

    def reduce(self, logits: Tensor, classes1: Tensor) -> Tensor:
        """``(k, K)`` weights from the logits ``(S, K, C)`` of every sample and channel."""
        if self.scores == "probability":
            return logits.softmax(-1).mean(0)[:, classes1].T
        return logits.mean(0)[:, classes1].T.softmax(-1)

    shares_constant_channels = True
    """A constant channel's mask is zero, so its masked input is the same for every such channel:
    one forward pass stands for all of them (exact). SS-CAM adds noise per channel and opts out."""

    def weights(self, net: Net, x1: Tensor, a1: Tensor, logits1: Tensor, classes1: Tensor) -> Tensor:
        model = module_of(net)
        shape = tuple(x1.shape[-2:])
        size = chunk_size(model, x1, self.max_mb)
        k = a1.shape[0]
        run = torch.arange(k, device=a1.device)
        if self.shares_constant_channels:
            flat = a1.flatten(1)
            live = flat.amax(1) > flat.amin(1)
            dead = (~live).nonzero()[:, 0]
            run = torch.cat([live.nonzero()[:, 0], dead[:1]])  # the live channels and one constant one
        n = run.numel()
        got = torch.empty(self.samples, n, logits1.shape[-1], dtype=torch.promote_types(logits1.dtype, torch.float32))
        parts = list(chunks(n, size))
        masks = None
        with evaluating(model), torch.no_grad():
            for sample in range(self.samples):
                for s in parts:
                    m = masks if masks is not None else self.masks(a1[run[s]], shape)
                    got[sample, s] = logits(model, self.inputs(x1, m, sample)).to(got.dtype).cpu()
                if len(parts) == 1:
                    masks = m  # one chunk: keep its masks for the next samples
        out = got
        if n < k:  # every constant channel takes the scores of the one that ran
            out = got[:, -1:].expand(self.samples, k, got.shape[-1]).clone()
            out[:, run.cpu()] = got
        return self.reduce(out, classes1.cpu()).to(a1.device)
