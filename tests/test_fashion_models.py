"""The small CPU nets of the Fashion-MNIST benchmark: heads, exactness, checkpoints."""

from __future__ import annotations

import pytest
import torch

import camloc
from camloc.extract import cam, check_exact, extract
from camloc.models.checkpoint import save_checkpoint
from camloc.errors import HeadError
from camloc.models.heads import find_head


@pytest.mark.parametrize("size, side", [(64, 16), (48, 12)])
def test_gap_net_is_exact_and_maps_have_stride_4(size, side):
    torch.manual_seed(0)
    net = camloc.load_model("fashion_gap", in_size=size, widths=(4, 8, 8), head_channels=12)
    x = torch.randn(3, 3, size, size)
    feats, logits = extract(net, x)
    assert feats.shape == (3, 12, side, side) and logits.shape == (3, 10)
    report = check_exact(net, x)
    assert report.exact, str(report)
    out = cam(net, x, topk=2)
    with torch.no_grad():
        torch.testing.assert_close(out.maps.mean((-2, -1)) + out.bias[out.classes],
                                   logits.gather(1, out.classes), rtol=1e-4, atol=1e-4)


def test_gmp_net_scores_are_linear_in_the_channel_maxima():
    torch.manual_seed(0)
    net = camloc.load_model("fashion_gmp", widths=(4, 8, 8), head_channels=6)
    assert net.head.pooling == "max" and not net.head.exact
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats, logits = extract(net, x)
        w, b = net.classifier.weight, net.classifier.bias
        torch.testing.assert_close(logits, feats.amax((-2, -1)) @ w.T + b)
    assert not check_exact(net, x).exact


def test_fc_net_classifies_but_refuses_cam():
    torch.manual_seed(0)
    net = camloc.load_model("fashion_fc", widths=(4, 8, 8), fc_hidden=16)
    assert net.module(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    with pytest.raises(HeadError, match="fashion_fc: fully connected stack"):
        find_head(net.module)


def test_bf16_training_autocast_leaves_eval_in_float32():
    torch.manual_seed(0)
    net = camloc.load_model("fashion_gap", widths=(4, 8, 8), head_channels=6, bf16=True)
    x = torch.randn(2, 3, 64, 64)
    net.module.train()
    assert net.module(x).dtype == torch.float32
    net.module.eval()
    feats, _ = extract(net, x)
    assert feats.dtype == torch.float32 and check_exact(net, x).exact


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    from camloc.data.fashion_mnist import CLASSES

    net = camloc.load_model("fashion_gmp", widths=(4, 8, 8), head_channels=6, class_names=CLASSES)
    save_checkpoint(net, tmp_path / "n.pt")
    again = camloc.load_model(tmp_path / "n.pt")
    x = torch.randn(2, 3, 64, 64)
    assert again.name == "fashion_gmp" and again.class_names[0] == "T-shirt/top"
    with torch.no_grad():
        torch.testing.assert_close(again.module(x), net.module(x))


def test_stride_two_keeps_the_third_stage_at_half_resolution():
    torch.manual_seed(0)
    net = camloc.load_model("fashion_gap", widths=(4, 8, 8), head_channels=6, stride=2)
    feats, _ = extract(net, torch.randn(1, 3, 64, 64))
    assert feats.shape == (1, 6, 32, 32) and net.module.map_side == 32
    assert check_exact(net, torch.randn(2, 3, 64, 64)).exact
    from camloc.models.fashion import FashionNet

    with pytest.raises(ValueError, match="stride must be a power of two"):
        FashionNet(stride=3)


def test_unknown_head_is_refused():
    from camloc.models.fashion import FashionNet

    with pytest.raises(ValueError, match="head must be one of avg, max, fc"):
        FashionNet(head="sum")
