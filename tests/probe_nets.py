"""Tiny hand-built GAP backbones and images for the probe tests (CPU, milliseconds)."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image
from torch import nn

from camloc.data.base import Sample, Split
from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import register

# Pure colors on a gray background; the color detector below sees each as one channel.
COLORS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
GRAY = (128, 128, 128)


class ColorNet(nn.Module):
    """``f = relu(A x + a)``: channel k fires on color k (r, g, b dominant), then GAP + linear.

    Inputs are in [0, 1] (mean 0, std 1 preprocessing). Channel 3 is brightness, so the
    features are not all zero on gray.
    """

    def __init__(self, n_out: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(
                [[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0], [1 / 3, 1 / 3, 1 / 3]]
            ).view(4, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([-0.2, -0.2, -0.2, 0.0]))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


class RandomNet(nn.Module):
    """A seeded random 2-layer GAP CNN with 8 features."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        with torch.no_grad():
            for p in self.body.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.body(x)).flatten(1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


PLAIN = Preprocessing(shape=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@register("test_colornet", "test only: a 4-feature color detector")
def colornet(n_out: int = 3) -> CamNet:
    return CamNet(module=ColorNet(n_out), name="test_colornet", class_names=[], preprocessing=PLAIN,
                  arch_kwargs={"n_out": n_out})


@register("test_randomnet", "test only: a seeded random 8-feature GAP CNN")
def randomnet(seed: int = 0) -> CamNet:
    return CamNet(module=RandomNet(seed), name="test_randomnet", class_names=[], preprocessing=PLAIN,
                  arch_kwargs={"seed": seed})


def square_image(path: str, color: str, box: tuple[int, int, int, int], size: tuple[int, int] = (64, 48),
                 noise: int = 0, seed: int = 0) -> None:
    """A gray ``size=(w, h)`` image with a ``color`` rectangle on inclusive ``box``."""
    w, h = size
    arr = np.empty((h, w, 3), np.uint8)
    arr[:] = GRAY
    if noise:
        rng = np.random.default_rng(seed)
        arr = np.clip(arr.astype(int) + rng.integers(-noise, noise + 1, arr.shape), 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = box
    arr[y0 : y1 + 1, x0 : x1 + 1] = COLORS[color]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


def color_split(root: str, n_per_class: int = 4, classes: tuple[str, ...] = ("red", "green", "blue"),
                seed: int = 0, name: str = "train") -> Split:
    """A split of gray images each holding one colored rectangle (the label) at a random place."""
    rng = np.random.default_rng(seed)
    samples = []
    for label, color in enumerate(classes):
        for i in range(n_per_class):
            w, h = 64, 48
            bw, bh = int(rng.integers(12, 28)), int(rng.integers(10, 22))
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            box = (x0, y0, x0 + bw - 1, y0 + bh - 1)
            path = os.path.join(root, name, color, f"{i:03d}.png")
            square_image(path, color, box, noise=6, seed=int(rng.integers(1 << 30)))
            samples.append(Sample(image_id=f"{color}/{i:03d}.png", path=path, label=label, boxes=[list(box)],
                                  size=(w, h)))
    return Split(samples=samples, classes=list(classes), name=name)
