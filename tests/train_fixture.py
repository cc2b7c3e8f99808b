"""A generated image-folder dataset for the training tests: class ``c`` is a square of colour
``COLOURS[c]`` at a random place on a gray noise background, so a few steps already learn it."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from camloc.data.base import Sample, Split

COLOURS = [(230, 30, 30), (30, 200, 30), (40, 60, 230), (230, 220, 30)]


def make_images(root: str | os.PathLike, n_per_class: int = 4, classes: int = 2, size: int = 40, seed: int = 0
                ) -> Split:
    """Write ``root/<class>/<i>.png`` and return the matching Split (labels by class order)."""
    rng = np.random.default_rng(seed)
    names = [f"c{k}" for k in range(classes)]
    samples = []
    for k, name in enumerate(names):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(n_per_class):
            img = rng.integers(90, 150, size=(size, size, 3), dtype=np.uint8)
            side = size // 2
            y, x = rng.integers(0, size - side + 1, size=2)
            img[y:y + side, x:x + side] = COLOURS[k]
            path = os.path.join(root, name, f"{i}.png")
            Image.fromarray(img).save(path)
            samples.append(Sample(image_id=f"{name}/{i}.png", path=path, label=k))
    return Split(samples=samples, classes=names, name="train")


TINY = {"model": "alexnet_gap", "model_args": {"width": 16}, "resize": 72, "crop": 64, "batch_size": 4,
        "workers": 0, "progress": False, "val_split": "", "lr": 0.01}


def _register_tiny() -> None:
    """``test_tiny_gap``: two strided 3x3 convs, one added 3x3 conv, GAP, linear (no batch norm,
    no dropout), registered for the tests only."""
    from torch import nn

    from camloc.models import register
    from camloc.models.net import CamNet, Preprocessing
    from camloc.models.paper import GapNet

    @register("test_tiny_gap", "tests only: a two-conv GAP net")
    def tiny(num_classes: int = 2, width: int = 16, dropout: float = 0.0) -> CamNet:
        trunk = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        module = GapNet(trunk, 16, num_classes, width=width, convs=1, dropout=dropout)
        return CamNet(module, "test_tiny_gap", [], Preprocessing(shape=(32, 32)),
                      arch_kwargs={"num_classes": num_classes, "width": width, "dropout": dropout})


_register_tiny()

TINY_NET = {"model": "test_tiny_gap", "resize": 36, "crop": 32, "batch_size": 4, "workers": 0, "progress": False,
            "val_split": "", "lr": 0.05}
