"""CamNet: a classifier together with what CAM needs to read it."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from camloc.errors import one_line
from camloc.models.heads import Head, find_head

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessing:
    """Resize the whole image to the net's input ``shape = (height, width)`` (no crop, so maps
    cover the whole image), scale to [0, 1], subtract ``mean`` and divide by ``std`` per channel.

    In files (checkpoints, probe files, the ONNX graph's metadata) the shape is stored under the
    key ``"size"``, in the same ``(height, width)`` order: :meth:`to_dict` and :meth:`from_dict`
    are the only places that know it.

    Examples:
        >>> from PIL import Image
        >>> p = camloc.Preprocessing(shape=(32, 48))             # (height, width), ImageNet statistics
        >>> tuple(p([Image.new("RGB", (100, 50))]).shape)
        (1, 3, 32, 48)
        >>> p.to_dict()["size"]
        [32, 48]
    """

    shape: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def to_dict(self) -> dict[str, Any]:
        """The file form: ``{"size": [height, width], "mean": [...], "std": [...]}``."""
        return {"size": list(self.shape), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        """The inverse of :meth:`to_dict`; a one-line ``ValueError`` (starting "preprocessing")
        for a missing key or a value of the wrong kind."""
        if not isinstance(d, dict):
            raise ValueError(f"preprocessing is {type(d).__name__}, expected a dict")
        missing = [k for k in ("size", "mean", "std") if k not in d]
        if missing:
            raise ValueError(f"preprocessing lacks {', '.join(missing)}")
        size, mean, std = (_numbers(d[k]) for k in ("size", "mean", "std"))
        if size is None or len(size) != 2 or not all(float(v).is_integer() and 0 < v <= 1 << 16 for v in size):
            raise ValueError(f"preprocessing: size must be two positive integers, got {_short(d['size'])}")
        if mean is None or len(mean) != 3:
            raise ValueError(f"preprocessing: mean must be three finite numbers, got {_short(d['mean'])}")
        if std is None or len(std) != 3 or not all(v > 0 for v in std):
            raise ValueError(f"preprocessing: std must be three positive numbers, got {_short(d['std'])}")
        return cls(shape=(int(size[0]), int(size[1])), mean=mean, std=std)  # type: ignore[arg-type]

    def __call__(self, images: Sequence[Image.Image | np.ndarray | str]) -> Tensor:
        """Images (PIL, arrays or paths) -> ``(B, 3, H, W)``: each decoded and squashed to
        ``shape`` exactly as the inference pipeline's ``squash`` mode does it, then normalized."""
        from camloc.pixels.decode import decode
        from camloc.pixels.geometry import Resize

        squash = Resize("squash")
        arrays = [decode(im, squash, self.shape, draft=False).pixels for im in images]
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return batch.sub_(mean).div_(std)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode inside the block; afterwards every submodule's ``training`` flag is
    what it was (a caller's model in train mode, with some parts frozen in eval mode, stays so).

    Examples:
        >>> with evaluating(net.module):
        ...     logits = net.module(x)
    """
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in flags:
            m.training = training


def _numbers(value: Any) -> tuple[float, ...] | None:
    """A list or tuple of finite real numbers as floats, else ``None``."""
    if not isinstance(value, (list, tuple)):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return tuple(float(v) for v in value)


def _short(value: Any) -> str:
    return one_line(repr(value), 60)


@dataclass
class CamNet:
    """A classifier, its CAM head, its class names and its preprocessing.

    ``name`` and ``arch_kwargs`` rebuild the architecture from the registry (for checkpoints).
    ``probe``, when set, is a linear classifier trained on the pooled features of this
    (frozen) network: scores and maps then come from it instead of the network's own head, and
    ``class_names`` are the probe's.

    Examples:
        >>> net = camloc.load_model("resnet18", num_classes=10)     # random weights, 10 classes
        >>> net.name, net.preprocessing.shape, tuple(net(torch.zeros(1, 3, 224, 224)).shape)
        ('resnet18', (224, 224), (1, 10))
    """

    module: nn.Module
    name: str
    class_names: list[str]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    head: Head | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    probe: nn.Linear | None = None
    default_side: int | None = None  # the shorter side localize runs when no geometry is named (the default net's)

    def __post_init__(self) -> None:
        if self.head is None:
            self.head = find_head(self.module)
        self.module.eval()
        n = self.classifier.out_features
        if len(self.class_names) != n:
            self.class_names = [f"class_{i}" for i in range(n)]

    @property
    def classifier(self) -> nn.Linear:
        """The linear layer whose weights make the maps: the attached probe, else the head's."""
        return self.probe if self.probe is not None else self.head.classifier

    @property
    def bias(self) -> Tensor:
        """``(C,)``: what completes the maps' means to the scores, ``S_c = mean_xy M_c + bias_c``:
        the classifier's bias (zeros if none), plus ``W β`` after a normalization of the pooled
        vector (see :mod:`camloc.models.pooled_norm`)."""
        return self.head.bias(self.classifier).detach()

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> CamNet:
        self.module.to(device)
        return self

    def preprocess(self, images: Sequence[Image.Image | np.ndarray | str]) -> Tensor:
        """Images (PIL, HxWx3 uint8 arrays or paths) -> ``(B, 3, H, W)`` float tensor."""
        return self.preprocessing(images)

    def __call__(self, x: Tensor) -> Tensor:
        """The module's scores for ``x``, in eval mode (its training flags restored after)."""
        with evaluating(self.module):
            return self.module(x)
