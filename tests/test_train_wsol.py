"""The WSOL methods of ``camloc train`` (wsol_method), each checked by hand on tiny inputs: which
patches HaS hides, what ADL drops, what ACoL's branch erases, SPG's seed masks, CutMix's label
mixing; their config errors; resuming a run of each gives the uninterrupted run's weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camloc.errors import ConfigError
from camloc.train import train
from camloc.train.config import TrainConfig, apply_overrides, load_config
from camloc.train.wsol import WsolStep, build_method, label_map, resolve
from camloc.train.wsol.acol import erase
from camloc.train.wsol.adl import adl
from camloc.train.wsol.cutmix import CutMix, cut_box, cutmix
from camloc.train.wsol.has import HaS, draw_hidden, hide_patches
from camloc.train.wsol.spg import masked_bce, seed_mask
from train_fixture import TINY_NET, make_images


# --------------------------------------------------------------------------------------- HaS

def test_has_hides_exactly_the_marked_patches_and_cuts_the_border_ones():
    x = torch.arange(1, 26, dtype=torch.float32).view(1, 1, 5, 5)
    hidden = torch.tensor([[[True, False, False], [False, False, True], [False, True, False]]])
    out = hide_patches(x, 2, hidden)
    expect = x.clone()
    expect[0, 0, 0:2, 0:2] = 0  # cell (0, 0)
    expect[0, 0, 2:4, 4:5] = 0  # cell (1, 2): one column left by the border
    expect[0, 0, 4:5, 2:4] = 0  # cell (2, 1): one row left
    assert torch.equal(out, expect)
    assert int((out == 0).sum()) == 4 + 2 + 2


def test_has_draws_one_decision_per_patch_at_the_drop_rate():
    torch.manual_seed(0)
    h = draw_hidden(8, 64, 60, 4, 0.5)
    assert h.shape == (8, 16, 15)
    assert abs(float(h.float().mean()) - 0.5) < 0.03
    assert not draw_hidden(2, 8, 8, 4, 0.0).any() and draw_hidden(2, 8, 8, 4, 1.0).all()


class Spy(nn.Module):
    """Records its input; returns the fixed logits ``L``."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits, self.seen = logits, None

    def forward(self, x):
        self.seen = x.clone()
        return self.logits


def test_has_step_feeds_the_hidden_image_and_scores_cross_entropy():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    spy, y = Spy(logits), torch.tensor([0, 1])
    x = torch.ones(2, 3, 8, 8)
    out, loss = HaS(grid_size=4, drop_rate=1.0).step(spy, x, y)
    assert torch.equal(spy.seen, torch.zeros_like(x)) and torch.equal(out, logits)
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, y)))
    HaS(grid_size=4, drop_rate=0.0).step(spy, x, y)
    assert torch.equal(spy.seen, x)


# --------------------------------------------------------------------------------------- ADL

def test_adl_drop_mask_removes_the_peak_and_importance_map_is_sigmoid():
    # channel means: [[1, 2], [3, 4]]; 0.9 * max = 3.6, so only the 4 is dropped
    f = torch.tensor([[[0.0, 2.0], [4.0, 8.0]], [[2.0, 2.0], [2.0, 0.0]]]).unsqueeze(0)
    dropped = adl(f, drop_rate=0.75, threshold=0.9, u=0.3)  # 0.3 + 0.75 >= 1: the drop mask
    keep = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert torch.equal(dropped, f * keep)
    soft = adl(f, drop_rate=0.75, threshold=0.9, u=0.2)  # 0.2 + 0.75 < 1: the importance map
    att = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    torch.testing.assert_close(soft, f * torch.sigmoid(att))
    # threshold 0.5: 2 < 2.0 is false, so the 2, 3 and 4 go
    assert torch.equal(adl(f, 1.0, 0.5, 0.0)[0, 1], torch.tensor([[2.0, 0.0], [0.0, 0.0]]))


def test_adl_acts_in_training_only_and_leaves_no_hook_after_the_run(tiny_net):
    net = tiny_net()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        net.eval()
        plain = net(x)
        method = build_method("adl", {"drop_rate": 1.0, "threshold": 0.0}, net)  # drop everything >= 0
        assert torch.equal(net(x), plain)  # eval: the identity
        net.train()
        dropped = net(x)  # every feature where the attention is >= 0 (all of them) is dropped
        torch.testing.assert_close(dropped, net.fc.bias.expand(2, -1))
        method.detach_net()
        assert not torch.equal(net(x), dropped)


# -------------------------------------------------------------------------------------- ACoL

def test_label_map_is_the_normalized_cam_of_the_label():
    f = torch.tensor([[[[1.0, 2.0, 3.0]], [[0.0, 4.0, 1.0]]]])  # (1, 2, 1, 3)
    fc = nn.Linear(2, 2)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, -1.0]]))
    # class 1: [1 - 0, 2 - 4, 3 - 1] = [1, -2, 2] -> (m + 2) / 4
    torch.testing.assert_close(label_map(f, fc, torch.tensor([1])), torch.tensor([[[0.75, 0.0, 1.0]]]))
    torch.testing.assert_close(label_map(f, fc, torch.tensor([0])), torch.tensor([[[0.0, 0.5, 1.0]]]))


def test_acol_erases_the_features_at_or_above_the_threshold():
    att = torch.tensor([[[0.1, 0.8], [0.7, 0.69]]])
    f = torch.ones(1, 3, 2, 2)
    out = erase(f, att, 0.7)
    assert torch.equal(out[0, 1], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(out[:, 0], out[:, 2])


def test_acol_loss_is_both_branches_cross_entropy(tiny_net):
    torch.manual_seed(0)
    net = tiny_net()
    method = build_method("acol", {"threshold": 0.7, "branch_weight": 0.5}, net)
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 1])
    logits, loss = WsolStep(net, method)(x, y)
    t = net.trunk(x)
    f = net.extra(t)
    assert torch.equal(logits, net(x))
    fb = method.branch_b(erase(t, label_map(f, net.fc, y), 0.7))
    logits_b = method.fc_b(fb.mean((2, 3)))
    want = F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(logits_b, y)
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    # the net's own checkpoint holds no branch B: it stays the plain net
    assert not any(k.startswith(("branch_b", "fc_b")) for k in net.state_dict())
    assert set(method.state_dict()) == {"branch_b.0.weight", "branch_b.0.bias", "fc_b.weight", "fc_b.bias"}


# --------------------------------------------------------------------------------------- SPG

def test_spg_seed_masks_foreground_background_and_ignored():
    att = torch.tensor([[[0.9, 0.6, 0.3, 0.005]]])
    assert seed_mask(att, 0.7, 0.01).tolist() == [[[1.0, -1.0, -1.0, 0.0]]]
    # nothing above 0.7: the foreground is what clears 0.7 * max = 0.35
    weak = torch.tensor([[[0.5, 0.4, 0.2, 0.0]]])
    assert seed_mask(weak, 0.7, 0.01).tolist() == [[[1.0, 1.0, -1.0, 0.0]]]
    # background wins over foreground where both hold
    assert seed_mask(torch.tensor([[[0.9, 0.95]]]), 0.5, 0.92).tolist() == [[[0.0, 1.0]]]
    # 30 pixels per 224x224 must clear the high threshold: at 224x224 one pixel is too few
    big = torch.zeros(1, 224, 224)
    big[0, 0, 0], big[0, 5, 5] = 0.8, 0.6
    m = seed_mask(big, 0.7, 0.01)
    assert m[0, 0, 0] == 1 and m[0, 5, 5] == 1 and int((m == 1).sum()) == 2  # 0.6 > 0.7 * 0.8


def test_spg_bce_counts_only_labelled_pixels():
    logits = torch.tensor([[[0.0, 5.0, -3.0]]])
    mask = torch.tensor([[[1.0, -1.0, 0.0]]])
    want = (math.log(2) + math.log(1 + math.exp(-3.0))) / 2
    assert float(masked_bce(logits, mask)) == pytest.approx(want, rel=1e-6)
    assert float(masked_bce(logits, torch.full_like(mask, -1.0))) == 0.0


def test_spg_heads_train_and_stay_out_of_the_net(tiny_net):
    torch.manual_seed(0)
    net = tiny_net()
    method = build_method("spg", {"loss_weight_b": 0.0, "loss_weight_c": 0.0}, net)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    logits, loss = WsolStep(net, method)(x, y)
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(logits, y).detach()), rel=1e-6)  # CE alone
    method = build_method("spg", {}, net)
    _, loss = WsolStep(net, method)(x, y)
    loss.backward()
    assert all(p.grad is not None for p in method.parameters())
    assert not any(k.startswith(("b1", "b2", "c.")) for k in net.state_dict())


# ------------------------------------------------------------------------------------ CutMix

def test_cutmix_box_pastes_the_partner_and_mixes_labels_by_area():
    assert cut_box(4, 4, 0.75, 2, 2) == (1, 3, 1, 3)  # sides sqrt(0.25) * 4 = 2
    assert cut_box(4, 8, 0.75, 0, 7) == (0, 1, 5, 8)  # clipped by the border
    x = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 2.0)])
    y = torch.tensor([0, 1])
    mixed, ya, yb, lam = cutmix(x, y, torch.tensor([1, 0]), (1, 3, 1, 3))
    assert lam == 0.75 and ya.tolist() == [0, 1] and yb.tolist() == [1, 0]
    assert torch.equal(mixed[0, 0, 1:3, 1:3], torch.full((2, 2), 2.0))
    assert int((mixed[0] == 1.0).sum()) == 12 and torch.equal(x[0], torch.full((1, 4, 4), 1.0))


def test_cutmix_step_loss_is_the_area_weighted_cross_entropy():
    n = 4
    logits = torch.tensor([[1.0, 0.0, -1.0, 2.0], [0.0, 3.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [0.5, 0.0, 2.0, 1.0]])
    x = torch.arange(1.0, n + 1).view(n, 1, 1, 1).expand(n, 3, 16, 16).contiguous()
    y = torch.arange(n)
    mixed_cases = 0
    for seed in range(8):
        torch.manual_seed(seed)
        spy = Spy(logits)
        _, loss = CutMix(beta=1.0, prob=1.0).step(spy, x, y)
        seen = spy.seen[:, 0]
        own = (seen == x[:, 0]).flatten(1).float().mean(1)  # each image's unchanged share
        lam = float(own.min())
        partner = torch.tensor([int(seen[i][seen[i] != i + 1][0]) - 1 if own[i] < 1 else i for i in range(n)])
        want = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, partner)
        assert float(loss) == pytest.approx(float(want), rel=1e-6)
        mixed_cases += int(lam < 1 and bool((partner != y).any()))
    assert mixed_cases >= 3
    torch.manual_seed(0)
    spy = Spy(logits)
    CutMix(beta=1.0, prob=0.0).step(spy, x, y)
    assert torch.equal(spy.seen, x)


# ----------------------------------------------------------------------------- config errors

def test_defaults_are_the_benchmarks():
    assert resolve("has", {}) == {"grid_size": 4, "drop_rate": 0.5}
    assert resolve("adl", {"threshold": 0.8}) == {"drop_rate": 0.75, "threshold": 0.8}
    assert resolve("spg", {})["threshold_3l"] == 0.1 and resolve("cutmix", {}) == {"beta": 1.0, "prob": 1.0}
    assert resolve("acol", {}) == {"threshold": 0.7, "branch_weight": 1.0} and resolve("cam", {}) == {}


@pytest.mark.parametrize("method, args, message", [
    ("hass", {}, r"unknown wsol_method 'hass' \(did you mean 'has'\?"),
    ("adl", {"grid_size": 4}, r"wsol_method 'adl' has no key 'grid_size' \(a key of 'has'; adl's keys: drop_rate, threshold\)"),
    ("adl", {"drop_rat": 0.5}, r"has no key 'drop_rat' \(did you mean 'drop_rate'\?; adl's keys"),
    ("cam", {"beta": 1.0}, r"wsol_method 'cam' has no key 'beta' \(a key of 'cutmix'; cam's keys: none\)"),
    ("adl", {"threshold": 1.5}, r"'threshold' must be in \[0, 1\], got 1\.5"),
    ("has", {"grid_size": 2.5}, r"'grid_size' must be an integer, got 2\.5"),
    ("spg", {"threshold_1l": 0.8}, r"'threshold_1l' \(0\.8\) must not exceed 'threshold_1h' \(0\.7\)"),
])
def test_bad_method_or_key_is_one_line_naming_the_close_key(method, args, message):
    with pytest.raises(ConfigError, match=message) as err:
        TrainConfig(wsol_method=method, wsol_args=args).check()
    assert "\n" not in str(err.value)


def test_config_file_error_names_the_line_of_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('data = "x"\nwsol_method = "has"\n[wsol_args]\ngrid_size = 8\nthreshold = 0.5\n')
    with pytest.raises(ConfigError, match=rf"{path}:5: wsol_method 'has' has no key 'threshold' \(a key of 'acol', 'adl'"):
        load_config(path)
    path.write_text('data = "x"\nwsol_method = "acl"\n')
    with pytest.raises(ConfigError, match=rf"{path}:2: unknown wsol_method 'acl' \(did you mean 'acol'"):
        load_config(path)
    path.write_text('data = "x"\nwsol_method = "has"\n[wsol_args]\ngrid_size = 8\n')
    cfg = apply_overrides(load_config(path), ["wsol_args.drop_rate=0.25"])
    assert cfg.wsol_args == {"grid_size": 8, "drop_rate": 0.25}
    with pytest.raises(ConfigError, match=r"overrides: wsol_method 'has' has no key 'beta' \(a key of 'cutmix'"):
        apply_overrides(cfg, ["wsol_args.beta=2"])


# ----------------------------------------------------------------------------- whole runs

@pytest.fixture
def tiny_net():
    from camloc.models import load_model

    def make():
        return load_model("test_tiny_gap", num_classes=2).module
    return make


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsol")
    make_images(root / "train", n_per_class=4, classes=2, size=40)
    return root


@pytest.mark.parametrize("method", ["acol", "spg"])  # all six: test_train_wsol_torchrun.py
def test_a_resumed_run_equals_the_uninterrupted_one_with_the_methods_layers(method, colours, tmp_path):
    cfg = {**TINY_NET, "data": str(colours), "epochs": 2, "wsol_method": method}
    whole = train({**cfg, "out": str(tmp_path / "whole")})
    train({**cfg, "out": str(tmp_path / "cut"), "epochs": 1})
    resumed = train(resume=tmp_path / "cut", overrides=["epochs=2"])
    a = torch.load(whole.last, weights_only=True)
    b = torch.load(resumed.last, weights_only=True)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    for k, v in a["train_state"]["wsol"].items():  # the method's own layers resume too
        assert torch.equal(v, b["train_state"]["wsol"][k]), k
    assert [r["train_loss"] for r in whole.metrics] == [r["train_loss"] for r in resumed.metrics]
    assert all(math.isfinite(r["train_loss"]) for r in whole.metrics)
    from camloc.models import load_model

    net = load_model(str(whole.best))  # the plain net: every evaluator reads it as before
    assert net.name == "test_tiny_gap"
