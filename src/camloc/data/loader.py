"""A torch ``Dataset`` over a :class:`~camloc.data.base.Split`, for training and validation.

Items are uint8 image tensors (4x less to move than floats); :class:`Normalize` scales a whole
batch on the training device.

Images that cannot be read (missing, truncated, not an image) are not fatal: the item comes
back as ``None`` with its one-line reason, and :func:`collate` drops it from the batch and
reports it in ``Batch.skipped``, so the training loop can count skips, also across worker
processes.

Augmentation is a pure function of ``(seed, epoch, index)``: each item seeds its own random
crop and flip from those three numbers. The same sample gets the same crop whichever process or
worker loads it and whether or not the run was interrupted and resumed, which is what makes a
resumed run, and a run on N processes, end with the same weights as one uninterrupted process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from camloc.data.base import Split
from camloc.pixels.decode import load_image
from camloc.errors import ImageError
from camloc.models.net import Preprocessing

Item = tuple[Tensor | None, int, str | None]


def train_transform(resize: int = 256, crop: int = 224, flip: bool = True, augment: str = "crop"
                    ) -> Callable[[Image.Image], Tensor]:
    """The training augmentation, PIL image -> ``(3, crop, crop)`` uint8 tensor: resize to
    ``resize x resize``, a random ``crop x crop`` window, a random horizontal flip.

    ``augment="resized_crop"`` uses a random-area, random-aspect crop rescaled to ``crop``
    instead of the fixed-size window. Scaling and normalization happen on the whole batch, on
    the training device (:class:`Normalize`).
    """
    if augment == "crop":
        steps: list[Callable] = [v2.Resize((resize, resize)), v2.RandomCrop(crop)]
    elif augment == "resized_crop":
        steps = [v2.RandomResizedCrop(crop)]
    else:
        raise ValueError(f"augment must be 'crop' or 'resized_crop', got {augment!r}")
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ToImage())
    return v2.Compose(steps)


class _Squash:
    """PIL image -> ``(3, H, W)`` uint8 tensor squashed to the net's input size by the inference
    pipeline's own decoding (a class, so DataLoader workers can pickle it)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = tuple(size)

    def __call__(self, img: Image.Image) -> Tensor:
        from camloc.pixels.decode import decode
        from camloc.pixels.geometry import Resize

        pixels = decode(img, Resize("squash"), self.size, draft=False).pixels
        return torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy()).permute(2, 0, 1)


def eval_transform(preprocessing: Preprocessing) -> Callable[[Image.Image], Tensor]:
    """Validation, PIL image -> uint8 tensor: the whole image squashed to the net's input size,
    no crop, exactly as the inference pipeline's ``squash`` mode (what ``net.preprocess`` and
    ``camloc evaluate`` see)."""
    return _Squash(preprocessing.shape)


class Normalize:
    """A uint8 batch ``(B, 3, H, W)`` -> float ``(x / 255 - mean) / std`` on ``device``, the
    same arithmetic as :class:`~camloc.models.net.Preprocessing`."""

    def __init__(self, preprocessing: Preprocessing, device: torch.device | str = "cpu") -> None:
        self.mean = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1)
        self.device = torch.device(device)

    def __call__(self, images: Tensor) -> Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        return x.sub_(self.mean).div_(self.std)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one item's augmentation: a hash of ``(seed, epoch, index)``."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SplitDataset(Dataset):
    """Items ``(uint8 image tensor, label, None)``, or ``(None, label, "<file>: <reason>")`` for an
    image that cannot be read.

    Args:
        split: the samples (their boxes are never read).
        transform: PIL image -> tensor.
        seed: base seed of the augmentation; call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, split: Split, transform: Callable[[Image.Image], Tensor], seed: int = 0) -> None:
        self.paths = [s.path for s in split.samples]
        self.labels = [int(s.label) for s in split.samples]
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        try:
            img = load_image(self.paths[index])
        except ImageError as err:
            return None, self.labels[index], str(err)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, self.epoch, index))
            x = self.transform(img)
        return x, self.labels[index], None


@dataclass
class Batch:
    """A collated batch: images ``(B, 3, H, W)``, labels ``(B,)`` and the reasons of the items
    left out (``B`` may be 0 when every item failed)."""

    images: Tensor
    labels: Tensor
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def collate(items: Sequence[Item]) -> Batch:
    good = [(x, y) for x, y, err in items if x is not None]
    skipped = [err for x, _, err in items if x is None and err is not None]
    if not good:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped)
    return Batch(torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good], dtype=torch.long), skipped)
