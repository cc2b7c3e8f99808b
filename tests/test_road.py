"""ROAD (Remove And Debias): the noisy linear imputation written out by hand, its parity with
quantus 0.6.0 (imputation and the MoRF accuracy curve), and the curves' order properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camloc.metrics.road import check_fractions, impute, removal_masks, road_curves, road_scores


def test_a_removed_centre_becomes_the_weighted_mean_of_its_eight_neighbours():
    img = np.arange(9, dtype=np.float64).reshape(1, 3, 3) ** 2  # 0 1 4 / 9 16 25 / 36 49 64
    removed = np.zeros((3, 3), bool)
    removed[1, 1] = True
    out = impute(img, removed, noise=0.0)
    edges, corners = 1 + 9 + 25 + 49, 0 + 4 + 36 + 64
    assert out[0, 1, 1] == pytest.approx((edges / 6 + corners / 12) / (4 / 6 + 4 / 12))
    assert np.array_equal(np.delete(out.ravel(), 4), np.delete(img.ravel(), 4))  # known pixels untouched


def test_a_linear_ramp_is_rebuilt_exactly_inside_and_noise_has_its_spread():
    yy, xx = np.mgrid[:12, :12].astype(np.float64)
    img = np.stack([2 * yy - 3 * xx + 1, yy + xx])
    removed = np.zeros((12, 12), bool)
    removed[2:10, 3:9] = True
    removed[5, 1] = True
    assert np.allclose(impute(img, removed, noise=0.0), img, atol=1e-9)
    noisy = impute(img, removed, noise=0.5, rng=np.random.default_rng(3))
    d = (noisy - img)[:, removed]
    assert abs(d.std() - 0.5) < 0.1 and np.array_equal(noisy[:, ~removed], img[:, ~removed])


def test_removal_masks_count_and_order():
    heat = np.array([[0.5, 0.1], [0.9, np.nan]])
    morf = removal_masks(heat, [0.25, 0.5, 0.75])
    lerf = removal_masks(heat, [0.25, 0.5, 0.75], order="lerf")
    assert [int(m.sum()) for m in morf] == [1, 2, 3]
    assert morf[0][1, 0] and morf[1][0, 0] and not morf[2][1, 1]  # 0.9, 0.5, 0.1; NaN last
    assert lerf[0][1, 1] and lerf[1][0, 1] and lerf[2][0, 0]      # NaN, 0.1, 0.5
    with pytest.raises(ValueError, match="order"):
        removal_masks(heat, [0.5], order="up")
    for bad in ([], [0.0], [1.0], [0.5, 0.5], ["a"]):
        with pytest.raises(ValueError, match="fractions"):
            check_fractions(bad)


def test_imputation_matches_quantus():
    q = pytest.importorskip("quantus.functions.perturb_func")
    rng = np.random.default_rng(0)
    img = rng.standard_normal((3, 20, 17))
    for p in (0.1, 0.5, 0.9):
        m = removal_masks(rng.random((20, 17)), [p])[0]
        ref = q.noisy_linear_imputation(img.copy(), np.flatnonzero(m), noise=0.0)
        assert np.abs(impute(img, m, noise=0.0) - ref).max() < 1e-10


def mean_net() -> nn.Module:
    """Logits ``(m, -m)`` with ``m`` the image's mean: the probability of class 0 is ``sigmoid(2 m)``."""
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)).eval()
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[2].bias.zero_()
    return net


def test_morf_accuracy_curve_matches_quantus_road():
    quantus = pytest.importorskip("quantus")
    net = mean_net()
    rng = np.random.RandomState(0)
    x = (rng.randn(8, 1, 10, 10) + 0.2).astype(np.float32)
    heat = x + rng.rand(8, 1, 10, 10).astype(np.float32) * 1e-3  # the pixels themselves, distinct values
    with torch.no_grad():
        y = net(torch.from_numpy(x)).argmax(1).numpy()
    percentages = [10, 30, 50, 70, 90]
    ref = quantus.ROAD(percentages=percentages, noise=0.0, normalise=False, disable_warnings=True)(
        model=net, x_batch=x, y_batch=y, a_batch=heat, device="cpu")
    ours = road_curves(net, torch.from_numpy(x), torch.from_numpy(heat[:, 0]), torch.from_numpy(y),
                       [p / 100 for p in percentages], noise=0.0)
    assert ours["morf_acc"].mean(axis=0) == pytest.approx([ref[p] for p in percentages], abs=1e-12)
    assert len(set(ref.values())) > 1  # the curve moves: the test compares something


def test_morf_of_a_map_is_lerf_of_its_negation_and_a_faithful_map_wins():
    net = mean_net()
    x = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    cls = torch.zeros(3, dtype=torch.long)
    good = x[:, 0]  # class 0's score is the mean: its brightest pixels matter most
    a = road_curves(net, x, good, cls, noise=0.0)
    b = road_curves(net, x, -good, cls, noise=0.0)
    assert np.allclose(a["morf_prob"], b["lerf_prob"]) and np.allclose(a["lerf_prob"], b["morf_prob"])
    p = 1 / (1 + np.exp(-2 * x.double().mean(dim=(1, 2, 3)).numpy()))
    assert (a["morf_prob"][:, 0] < p).all() and (a["lerf_prob"][:, 0] > p).all()  # 10 % gone moves it each way
    sa, sb = road_scores(a), road_scores(b)
    assert np.allclose(sa["road_gap"], sa["road_lerf"] - sa["road_morf"])
    assert sa["road_gap"].mean() > 0 > sb["road_gap"].mean()
    with pytest.raises(ValueError, match="maps"):
        road_curves(net, x, good[:, :5], cls)
    with pytest.raises(ValueError, match="noise"):
        road_curves(net, x, good, cls, noise=float("nan"))
