"""Shared fixtures: tiny hand-built models, the embedded default model, real photos."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from camloc.models.heads import Head


class TinyGap(nn.Module):
    """1-channel input -> 1x1 conv (2 units, weights 1 and 2) -> ReLU -> GAP -> linear (2 classes).

    For an input ``x`` the features are ``f0 = relu(x)``, ``f1 = relu(2x)``; with
    ``W = [[1, 0.5], [-1, 1]]`` and ``b = [0.1, -0.2]`` the maps are ``M0 = 2 relu(x)``,
    ``M1 = relu(x)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 0.5], [-1.0, 1.0]]))
            self.fc.bias.copy_(torch.tensor([0.1, -0.2]))

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu(self.conv(x))), 1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch) -> None:
    """Every test runs in an empty working directory of its own: a command's default output (``out/``)
    goes there, and what a user left in the checkout (``make demo``'s ``out/``) changes no test."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def tiny_gap() -> TinyGap:
    return TinyGap().eval()


@pytest.fixture(scope="session")
def lite0():
    import camloc

    return camloc.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def photo_dir() -> str:
    import skimage

    return os.path.join(os.path.dirname(skimage.__file__), "data")
