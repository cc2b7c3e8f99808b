"""The CVPR 2020 WSOL benchmark's backbones turned GAP: map sizes with and without
``large_feature_map``, local torchvision weights through the weights reader, checkpoints that
rebuild themselves, exact CAM, and the WSOL methods' steps on them."""

from __future__ import annotations

import pytest
import torch
import torchvision

from camloc.errors import ModelError
from camloc.models import load_model
from camloc.models.checkpoint import save_checkpoint
from camloc.train.wsol import WsolStep, build_method


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {(name, large): load_model(name, num_classes=3, width=8, large_feature_map=large)
            for name in ("resnet50_gap", "inception_v3_gap") for large in (False, True)}


@pytest.mark.parametrize("name, side, normal, large", [
    ("resnet50_gap", 64, 4, 8),  # stride 16 (layer4 at stride 1), 8 with layer3 at stride 1 too
    ("inception_v3_gap", 128, 6, 13),  # Mixed_6a at stride 1: twice the side (+1 from its padding)
])
def test_large_feature_map_halves_the_stride_and_cam_stays_exact(nets, name, side, normal, large):
    import camloc

    x = torch.randn(1, 3, side, side)
    for flag, want in ((False, normal), (True, large)):
        net = nets[name, flag]
        with torch.no_grad():
            assert net.module.features(x).shape[-2:] == (want, want), (name, flag)
        assert net.module.fc.out_features == 3
    assert camloc.check_exact(nets[name, True], x).exact


def test_resnet50_reads_local_torchvision_weights_and_rebuilds_from_its_checkpoint(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(tv.state_dict(), path)
    net = load_model("resnet50_gap", num_classes=2, backbone_weights=str(path), large_feature_map=True)
    assert torch.equal(net.module.trunk.layer3[0].conv2.weight, tv.layer3[0].conv2.weight)
    assert net.module.trunk.layer3[0].conv2.stride == (1, 1) and net.module.trunk.layer2[0].conv2.stride == (2, 2)
    x = torch.randn(1, 3, 64, 64)
    net.module.eval()
    save_checkpoint(net, tmp_path / "net.pt")
    again = load_model(str(tmp_path / "net.pt"))
    again.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(again.module(x), net.module(x))
    assert again.module.features(x).shape[-1] == 8  # stride 8: large_feature_map came back
    bad = tmp_path / "vgg.pth"
    torch.save(torchvision.models.vgg11(weights=None).features.state_dict(), bad)
    with pytest.raises(ModelError, match=r"vgg\.pth: not torchvision resnet50 weights \(missing conv1\.weight"):
        load_model("resnet50_gap", num_classes=2, backbone_weights=str(bad))


def test_acol_branch_b_without_added_convs_on_resnet50(nets):
    net = nets["resnet50_gap", True].module
    m = build_method("acol", {}, net)
    assert len(m.branch_b) == 0 and m.fc_b.in_features == 2048  # no added conv: B is a classifier alone
    logits, loss = WsolStep(net, m)(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    loss.backward()
    assert logits.shape == (2, 3) and torch.isfinite(loss)
    assert m.fc_b.weight.grad is not None and net.trunk.layer4[0].conv2.weight.grad is not None
