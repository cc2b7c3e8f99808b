"""camloc's faithfulness metrics against quantus 0.6.0 where the definitions agree: pixel flipping
(camloc's deletion curve, substrate 0) and the pointing game; ROAD is in tests/test_road.py.
Where they differ (docs/methods.md), the difference itself is asserted."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from camloc.boxes import pointing_hit
from camloc.metrics.faithfulness import perturbation_curves

quantus = pytest.importorskip("quantus")


def grey_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


def test_deletion_curve_is_quantus_pixel_flipping():
    net = grey_net()
    rng = np.random.RandomState(0)
    x = rng.rand(4, 1, 8, 8).astype(np.float32)
    x[:, 0, 0, 0] = 0.0  # quantus's "black" is the image minimum: 0, camloc's "zero" substrate
    heat = rng.rand(4, 1, 8, 8).astype(np.float32)  # distinct values: one order
    y = np.array([0, 1, 2, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = quantus.PixelFlipping(features_in_step=8, perturb_baseline="black", normalise=False,
                                   disable_warnings=True)(model=net, x_batch=x, y_batch=y, a_batch=heat, device="cpu")
    ref = np.asarray(ref)  # (B, 8): after each step of 8 pixels; quantus reads softmax probabilities
    dele, _ = perturbation_curves(net, torch.from_numpy(x), torch.from_numpy(heat[:, 0]), torch.from_numpy(y), steps=8,
                                  kind="zero")
    assert ref.shape == (4, 8) and np.ptp(ref) > 1e-3
    assert dele[:, 1:] == pytest.approx(ref, abs=1e-6)  # camloc's point 0 is the intact image


def test_pointing_game_is_quantus_where_the_maximum_is_unique_and_differs_on_ties():
    rng = np.random.RandomState(1)
    heat = rng.rand(12, 10, 10)
    boxes = [[[int(a), int(b), int(a) + 4, int(b) + 4]] for a, b in rng.randint(0, 6, (12, 2))]
    masks = np.zeros((12, 1, 10, 10))
    for i, ((x0, y0, x1, y1),) in enumerate(boxes):
        masks[i, 0, y0 : y1 + 1, x0 : x1 + 1] = 1
    metric = quantus.PointingGame(disable_warnings=True)
    ref = metric.evaluate_batch(a_batch=heat[:, None], s_batch=masks)
    ours = [pointing_hit(h, b) for h, b in zip(heat, boxes)]
    assert list(ref) == ours and 0 < sum(ours) < 12
    # a tie: quantus counts a hit when any maximum is inside; camloc takes the first in raster order
    tie = np.zeros((10, 10))
    tie[0, 0] = tie[9, 9] = 1.0
    inside = [[5, 5, 9, 9]]
    m = np.zeros((1, 1, 10, 10))
    m[0, 0, 5:, 5:] = 1
    assert bool(metric.evaluate_batch(a_batch=tie[None, None], s_batch=m)[0]) and not pointing_hit(tie, inside)
