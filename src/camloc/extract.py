"""The one-forward extractor: hook the feature layer, run the model once, return features,
logits and class maps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from camloc.cam import class_maps
from camloc.hooks import capture
from camloc.models.net import CamNet, evaluating


def extract(net: CamNet, x: Tensor) -> tuple[Tensor, Tensor]:
    """One forward pass of ``net`` on ``x`` -> ``(features (B, K, h, w), logits (B, C))``.

    With a probe attached to ``net``, the logits are the probe's scores on the pooled features.
    The module runs in eval mode; its training flags are restored after.

    Examples:
        >>> from camloc.testing.nets import colour_net
        >>> features, logits = camloc.extract(colour_net(), torch.zeros(2, 3, 64, 64))
        >>> tuple(features.shape), tuple(logits.shape)
        ((2, 3, 64, 64), (2, 3))
    """
    with evaluating(net.module), capture(net.head.feature_module, net.head.capture) as store:
        logits = net.module(x)
    if "value" not in store:
        raise RuntimeError(f"{net.name}: the feature layer was not run by the forward pass")
    features = store["value"]
    if net.head.post is not None:
        features = net.head.post(features)
    if not isinstance(logits, Tensor):  # e.g. Inception's namedtuple in train mode
        logits = logits[0]
    if net.probe is not None:
        logits = net.probe(pool(features, net.head.pooling))
    return features, logits


def pool(features: Tensor, pooling: str = "avg") -> Tensor:
    """Global pooling of ``(B, K, h, w)`` features -> ``(B, K)``."""
    return features.amax(dim=(-2, -1)) if pooling == "max" else features.mean(dim=(-2, -1))


@dataclass
class CamOutput:
    """What one forward pass gives.

    Attributes:
        logits: ``(B, C)`` class scores.
        classes: ``(B, k)`` class indices, best first (or the classes asked for).
        maps: ``(B, k, h, w)`` raw CAMs at feature resolution (signed, unnormalized).
        bias: ``(C,)`` classifier bias (zeros if it has none; ``W β + b`` after a pooled
            normalization, see :mod:`camloc.models.pooled_norm`).
        features: ``(B, K, h, w)`` the last features.

    Examples:
        >>> from camloc.testing.nets import colour_net
        >>> x = torch.zeros(1, 3, 64, 64); x[0, 2, :8, :8] = 2.0         # a blue corner
        >>> out = camloc.cam(colour_net(), x, topk=1)
        >>> out.classes.tolist(), tuple(out.maps.shape), out.bias.tolist()
        ([[2]], (1, 1, 64, 64), [0.0, 0.0, 0.0])
        >>> torch.allclose(out.maps.mean((-2, -1)) + out.bias[out.classes], out.logits.gather(1, out.classes))
        True
    """

    logits: Tensor
    classes: Tensor
    maps: Tensor
    bias: Tensor
    features: Tensor

    @property
    def probs(self) -> Tensor:
        return self.logits.softmax(dim=1)


def cam(net: CamNet, x: Tensor, topk: int = 5, classes: Tensor | None = None) -> CamOutput:
    """Classify and compute class activation maps in ONE forward pass.

    Args:
        net: a :class:`CamNet` (see :func:`camloc.load_model`).
        x: ``(B, 3, H, W)`` preprocessed images, on the net's device.
        topk: how many best classes to map (ignored when ``classes`` is given).
        classes: ``(B, n)`` or ``(n,)`` class indices to map instead of the top-k.

    For an exact head, ``out.maps.mean((-2, -1)) + out.bias[out.classes]`` equals
    ``out.logits.gather(1, out.classes)`` to float tolerance.

    Raises:
        ValueError: ``non-finite scores for images [i, ...] of the batch`` when a score is NaN
            or infinite (NaN or inf in ``x`` or in the weights): the top-k of NaN scores would
            be meaningless classes, so nothing is returned for the batch.

    Examples:
        >>> from camloc.photos import demo_photo_paths
        >>> net = camloc.load_model()                      # EfficientNet-Lite1 (camloc.defaults)
        >>> out = camloc.cam(net, net.preprocess(demo_photo_paths()[:1]), topk=5)   # the cat
        >>> out.maps.shape, net.class_names[int(out.classes[0, 0])]
        (torch.Size([1, 5, 8, 8]), 'Egyptian cat')
    """
    with evaluating(net.module), torch.no_grad():  # the caller's training flags come back after
        features, logits = extract(net, x)
        bad = (~torch.isfinite(logits)).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise ValueError(f"non-finite scores for images {bad} of the batch (NaN or inf in the input or the weights)")
        linear = net.classifier
        if classes is None:
            k = max(1, min(int(topk), logits.shape[1]))
            classes = logits.topk(k, dim=1).indices
        else:
            classes = torch.as_tensor(classes, device=logits.device, dtype=torch.long)
            if classes.dim() == 1:
                classes = classes.unsqueeze(0).expand(logits.shape[0], -1)
        maps = class_maps(features, linear.weight, classes)
        bias = net.bias
    return CamOutput(logits=logits, classes=classes, maps=maps, bias=bias, features=features)


@dataclass
class ExactReport:
    """Result of :func:`check_exact`: the largest gap ``|mean(M_c) + b_c - S_c|`` over all classes."""

    exact: bool
    max_abs_error: float
    scale: float

    def __str__(self) -> str:
        verdict = "exact" if self.exact else "NOT exact"
        return f"CAM is {verdict}: max |mean(M_c)+b_c - S_c| = {self.max_abs_error:.3g} (logit scale {self.scale:.3g})"


def check_exact(net: CamNet, x: Tensor | None = None, rtol: float = 1e-4, atol: float = 1e-4) -> ExactReport:
    """Check ``mean_xy M_c + b_c == S_c`` for every class on ``x`` (default: 2 random images).

    A head with global max pooling is reported not exact whatever the numbers say. With random
    weights the logits can be tiny; ``ExactReport.scale`` says how large they were.

    Examples:
        >>> from camloc.testing.nets import colour_net
        >>> camloc.check_exact(colour_net("avg")).exact, camloc.check_exact(colour_net("max")).exact
        (True, False)
    """
    if x is None:
        g = torch.Generator().manual_seed(0)
        h, w = net.preprocessing.shape
        x = torch.randn(2, 3, h, w, generator=g).to(net.device)
    with evaluating(net.module), torch.no_grad():
        features, logits = extract(net, x)
        linear = net.classifier
        all_classes = torch.arange(logits.shape[1], device=logits.device)
        maps = class_maps(features.double(), linear.weight.double(), all_classes)
        bias = net.bias.double()
        recon = maps.mean(dim=(-2, -1)) + bias.to(maps.device)
    err = float((recon - logits.double()).abs().max())
    scale = float(logits.abs().max())
    # A max-pooling head is never exact: its scores are not the means of the maps.
    exact = net.head.exact and err <= atol + rtol * scale
    return ExactReport(exact=exact, max_abs_error=err, scale=scale)
