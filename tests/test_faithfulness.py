"""Faithfulness metrics on hand-built nets whose answers are written out.

The net: a 1x1 convolution that copies input channel 0, global average pooling, and a linear
layer giving the logits ``(s, 0)`` with ``s`` the mean of channel 0; so the probability of
class 0 is ``sigmoid(mean(x_0))`` and every perturbed image's score is known by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camloc.boxes import pointing_hit
from camloc.metrics.faithfulness import (FaithfulnessEvaluator, auc, confidence_change, perturbation_curves,
                                         substrate)


def mean_channel_net() -> nn.Module:
    conv = nn.Conv2d(3, 1, 1, bias=False)
    fc = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
        fc.weight.copy_(torch.tensor([[1.0], [0.0]]))
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()


def sigmoid(v):
    return 1 / (1 + np.exp(-np.asarray(v, np.float64)))


def image(channel0) -> torch.Tensor:
    a = torch.tensor(channel0, dtype=torch.float32)
    x = torch.zeros(1, 3, *a.shape)
    x[0, 0] = a
    x[0, 1] = 7.0  # channels the net ignores
    return x


def test_deletion_and_insertion_curves_of_a_2x2_image_in_four_steps():
    net = mean_channel_net()
    x = image([[4.0, 3.0], [2.0, 1.0]])  # channel mean 2.5: the "mean" substrate
    d, i = perturbation_curves(net, x, x[:, 0], torch.tensor([0]), steps=4, kind="mean")
    # deleting 4, then 3, 2, 1 (each becomes 2.5): means 10/4, 8.5/4, 8/4, 8.5/4, 10/4
    assert d[0] == pytest.approx(sigmoid([2.5, 2.125, 2.0, 2.125, 2.5]), abs=1e-6)
    # inserting 4, 3, 2, 1 into a 2.5 canvas: 10/4, 11.5/4, 12/4, 11.5/4, 10/4
    assert i[0] == pytest.approx(sigmoid([2.5, 2.875, 3.0, 2.875, 2.5]), abs=1e-6)
    p = sigmoid([2.5, 2.125, 2.0, 2.125, 2.5])
    assert auc(d)[0] == pytest.approx((p[0] / 2 + p[1] + p[2] + p[3] + p[4] / 2) / 4, abs=1e-6)


def test_the_map_order_decides_the_curve_and_steps_round_the_pixel_count():
    net = mean_channel_net()
    v = np.arange(16, dtype=np.float32).reshape(4, 4)  # 0..15, mean 7.5
    x = image(v)
    good, bad = torch.from_numpy(v)[None], torch.from_numpy(-v)[None]
    dg, ig = perturbation_curves(net, x, good, torch.tensor([0]), steps=2, kind="zero")
    db, ib = perturbation_curves(net, x, bad, torch.tensor([0]), steps=2, kind="zero")
    # steps=2: 0, 8, 16 pixels. Deleting the top 8 (8..15, sum 92) leaves 0..7 (sum 28)
    assert dg[0] == pytest.approx(sigmoid([7.5, 28 / 16, 0.0]), abs=1e-6)
    assert db[0] == pytest.approx(sigmoid([7.5, 92 / 16, 0.0]), abs=1e-6)
    assert ig[0] == pytest.approx(sigmoid([0.0, 92 / 16, 7.5]), abs=1e-6)
    assert auc(dg)[0] < auc(db)[0] and auc(ig)[0] > auc(ib)[0]
    # a batch of two gives each image its own curve
    d2, _ = perturbation_curves(net, torch.cat([x, x]), torch.cat([good, bad]), torch.tensor([0, 0]), steps=2,
                                kind="zero", chunk=3)
    assert np.allclose(d2, np.concatenate([dg, db]))


def test_class_one_curve_is_the_complement_and_equal_maps_go_in_raster_order():
    net = mean_channel_net()
    x = image([[1.0, 3.0], [0.0, 0.0]])
    d, _ = perturbation_curves(net, x, torch.zeros(1, 2, 2), torch.tensor([1]), steps=4, kind="zero")
    # raster order: the 1 goes first, then the 3: means 1, 0.75, 0, 0, 0
    assert d[0] == pytest.approx(1 - sigmoid([1.0, 0.75, 0.0, 0.0, 0.0]), abs=1e-6)


def test_blur_substrate_keeps_a_constant_image_and_the_mean():
    x = torch.full((2, 3, 9, 11), 0.3)
    assert torch.allclose(substrate(x, "blur", 2.0), x, atol=1e-6)
    y = torch.zeros(1, 1, 31, 31)
    y[0, 0, 15, 15] = 1.0
    b = substrate(y, "blur", 2.0)
    assert float(b.sum()) == pytest.approx(1.0, abs=1e-5) and float(b.max()) < 0.05
    assert int(b[0, 0].argmax()) == 15 * 31 + 15
    with pytest.raises(ValueError, match="substrate"):
        substrate(x, "noise")


def test_average_drop_is_zero_for_a_perfect_map_and_written_out_for_its_complement():
    net = mean_channel_net()
    obj = np.zeros((4, 4), np.float32)
    obj[:2, :2] = 1.0
    x = image(3 * obj)  # mean 0.75
    m = torch.from_numpy(obj)[None]
    p, pm = confidence_change(net, x, m, torch.tensor([0]))
    assert p[0] == pytest.approx(sigmoid(0.75)) and pm[0] == pytest.approx(sigmoid(0.75))
    p2, pm2 = confidence_change(net, x, 1 - m, torch.tensor([0]))
    assert pm2[0] == pytest.approx(0.5)
    ev = FaithfulnessEvaluator(steps=1)
    ev.accumulate(np.zeros((2, 2)), np.ones((2, 2)), np.r_[p, p2], np.r_[pm, pm2])
    r = ev.compute()
    drop = (sigmoid(0.75) - 0.5) / sigmoid(0.75)
    assert r["average_drop"] == pytest.approx(100 * drop / 2)
    assert r["increase_in_confidence"] == 0.0
    assert r["deletion_auc"] == 0.0 and r["insertion_auc"] == 1.0
    # a map that keeps more than the object raises nothing here; scaling up the object does
    p3, pm3 = confidence_change(net, image(-obj), torch.from_numpy(1 - obj)[None], torch.tensor([0]))
    assert pm3[0] > p3[0]


def test_pointing_game_on_written_out_maps():
    m = np.zeros((10, 20))
    m[3, 15] = 1.0
    assert pointing_hit(m, [[15, 3, 15, 3]])  # inclusive corners
    assert pointing_hit(m, [[0, 0, 4, 4], [10, 0, 19, 5]])
    assert not pointing_hit(m, [[0, 0, 14, 9]])
    assert not pointing_hit(m, [[15, 4, 19, 9]])
    flat = np.ones((10, 20))  # ties: the first pixel in raster order
    assert pointing_hit(flat, [[0, 0, 0, 0]]) and not pointing_hit(flat, [[1, 0, 19, 9]])
    ev = FaithfulnessEvaluator(steps=2)
    ev.accumulate_pointing([True, False, True, True])
    assert ev.compute() == {"pointing_game": 75.0}


def test_states_merge_and_bad_shapes_are_named():
    a, b = FaithfulnessEvaluator(2), FaithfulnessEvaluator(2)
    a.accumulate(np.array([[1.0, 0.5, 0.0]]), np.array([[0.0, 0.5, 1.0]]), np.array([0.8]), np.array([0.4]))
    b.accumulate(np.array([[1.0, 1.0, 1.0]]), np.array([[0.0, 0.0, 0.0]]), np.array([0.5]), np.array([0.6]))
    a.merge(b.state())
    r = a.compute()
    assert r["deletion_auc"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["insertion_auc"] == pytest.approx((0.5 + 0.0) / 2)
    assert r["average_drop"] == pytest.approx(100 * (0.5 + 0) / 2)
    assert r["increase_in_confidence"] == 50.0
    assert r["deletion_curve"] == pytest.approx([1.0, 0.75, 0.5])
    with pytest.raises(ValueError, match=r"curves must be \(B, 3\)"):
        a.accumulate(np.zeros((1, 4)), np.zeros((1, 4)), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="maps"):
        perturbation_curves(mean_channel_net(), torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="steps"):
        FaithfulnessEvaluator(0)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    from camloc.testing import write_wsol_fixture

    return write_wsol_fixture(tmp_path_factory.mktemp("data"), num_classes=3, per_class=2)


@pytest.mark.parametrize("method", ["cam", "backprop", "gradcam", "gradcampp"])
def test_evaluate_reports_faithfulness_for_every_method(fixture, method):
    from test_evaluate import colour_net

    from camloc.evaluate import EvalOptions, evaluate

    """The colour net's class-c features are ReLU(x_c - 0.5): only the object's pixels count, the
    zero substrate gives all-zero logits (p = 1/3), and every method ranks the object (under a
    quarter of the image) first; so one step of four deletes or inserts the whole object."""
    r = evaluate(colour_net(), fixture.split, EvalOptions(method=method, progress=False, faithfulness=True,
                                                           faithfulness_steps=4, faithfulness_substrate="zero",
                                                           batch_size=4)).metrics
    assert r["num_faithfulness_images"] == 6 and r["faithfulness_substrate"] == "zero"
    p = r["deletion_curve"][0]
    assert p > 0.34
    assert r["deletion_curve"] == pytest.approx([p] + [1 / 3] * 4, abs=1e-6)
    assert r["insertion_curve"] == pytest.approx([1 / 3] + [p] * 4, abs=1e-6)
    assert r["deletion_auc"] == pytest.approx((p / 2 + 3 / 3 + 1 / 6) / 4, abs=1e-6)
    assert r["insertion_auc"] == pytest.approx((1 / 6 + 3 * p + p / 2) / 4, abs=1e-6)
    assert r["increase_in_confidence"] == 0.0
    if method == "backprop":  # its map is constant on the object: the masked image is the image
        assert r["average_drop"] == pytest.approx(0.0, abs=1e-6)
    else:  # CAM's map is ReLU(x_c - 0.5) itself: the pointing game always hits
        assert r["pointing_game"] == 100.0 and 0 < r["average_drop"] < 5


def test_cli_rejects_faithfulness_steps_below_one(capsys):
    from camloc.cli import main

    rc = main(["evaluate", "--model", "x.pt", "--data", ".", "--faithfulness", "--faithfulness-steps", "0"])
    assert rc != 0 and "--faithfulness-steps must be a positive integer" in capsys.readouterr().err
