"""The paper's GAP/GMP nets and gapify: structure, map sizes, exact CAM, weights, checkpoints."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

import pytest

import camloc
from camloc.extract import extract
from camloc.models import ModelError
from camloc.models.checkpoint import save_checkpoint
from camloc.models.gapify import default_layer, gapify
from camloc.models.paper import GapNet

# name: (convs in the kept trunk, trunk output channels, added 3x3 convs, map side at 224x224)
PAPER = {
    "alexnet_gap": (5, 256, 1, 13),
    "alexnet_star_gap": (5, 256, 3, 13),
    "vgg16_gap": (13, 512, 1, 14),
    "googlenet_gap": (3 + 7 * 6, 832, 1, 14),  # conv1-3, then 3a, 3b, 4a..4e with 6 convs each
}
GMP = {name.replace("_gap", "_gmp"): spec for name, spec in PAPER.items()}
_CACHE: dict[str, camloc.CamNet] = {}


def paper_net(name: str) -> camloc.CamNet:
    """Each net is built once per module (VGG16 is heavy)."""
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = camloc.load_model(name, num_classes=7)
    return _CACHE[name]


def convs_of(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_registry_lists_every_paper_net_and_its_gmp_twin():
    names = camloc.available_models()
    for name in [*PAPER, *GMP, "gapify"]:
        assert name in names


@pytest.mark.parametrize("name", list(PAPER) + list(GMP))
def test_structure(name):
    n_trunk, channels, n_added, _ = {**PAPER, **GMP}[name]
    net = paper_net(name)
    module = net.module
    assert isinstance(module, GapNet)
    assert len(convs_of(module.trunk)) == n_trunk
    added = convs_of(module.extra)
    assert len(added) == n_added
    assert added[0].in_channels == channels
    for conv in added:
        assert (conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (1024, (3, 3), (1, 1), (1, 1))
    relus = [m for m in module.extra if isinstance(m, nn.ReLU)]
    assert len(relus) == n_added
    assert (module.fc.in_features, module.fc.out_features) == (1024, 7)
    pool_type = nn.AdaptiveMaxPool2d if name.endswith("_gmp") else nn.AdaptiveAvgPool2d
    assert isinstance(module.pool, pool_type)
    assert net.head.pooling == ("max" if name.endswith("_gmp") else "avg")
    assert net.name == name and net.num_classes == 7


def test_googlenet_keeps_layers_up_to_inception4e_without_aux_heads():
    trunk = paper_net("googlenet_gap").module.trunk
    names = [n for n, _ in trunk.named_children()]
    assert names[-1] == "inception4e"
    assert not any(n.startswith(("aux", "inception5", "maxpool4")) for n in names)
    assert not any("aux" in n for n, _ in paper_net("googlenet_gap").module.named_modules())


def test_alexnet_and_vgg_trunks_stop_after_the_last_conv_relu():
    for name, last_conv_out in (("alexnet_gap", 256), ("vgg16_gap", 512)):
        trunk = paper_net(name).module.trunk
        assert isinstance(trunk[-1], nn.ReLU) and isinstance(trunk[-2], nn.Conv2d)
        assert trunk[-2].out_channels == last_conv_out
        assert not isinstance(trunk[-1], nn.MaxPool2d)


@pytest.mark.parametrize("name", list(PAPER))
def test_gap_map_size_and_exact_cam(name):
    """mean_xy M_c + b_c == S_c for every class (relative tolerance: GoogLeNet's logits are tiny at init)."""
    side = PAPER[name][3]
    net = paper_net(name)
    fc = net.module.fc
    with torch.no_grad():
        fc.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        features, logits = extract(net, x)
        assert features.shape == (1, 1024, side, side)
        fc.bias.copy_(torch.linspace(-1, 1, 7) * logits.abs().max())
        logits = net(x)
        recon = torch.einsum("ck,bkhw->bchw", fc.weight, features).mean(dim=(-2, -1)) + fc.bias
        scale = float(logits.abs().max())
        assert scale > 0
        torch.testing.assert_close(recon, logits, rtol=1e-4, atol=1e-5 * scale)
        out = camloc.cam(net, x, topk=3)
        torch.testing.assert_close(out.maps.mean((-2, -1)) + out.bias[out.classes], logits.gather(1, out.classes),
                                   rtol=1e-4, atol=1e-5 * scale)
    assert net.head.exact


@pytest.mark.parametrize("name", ["alexnet_gmp", "googlenet_gmp"])
def test_gmp_scores_are_the_linear_layer_on_max_pooled_features(name):
    side = GMP[name][3]
    net = paper_net(name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features, logits = extract(net, x)
        assert features.shape == (2, 1024, side, side)
        fc = net.module.fc
        torch.testing.assert_close(logits, fc(features.amax(dim=(-2, -1))), rtol=1e-5, atol=0)  # relative:
        assert not torch.allclose(logits, fc(features.mean(dim=(-2, -1))), rtol=1e-2, atol=0)  # tiny at init
    assert not net.head.exact


def test_vgg16_gmp_map_size():
    net = paper_net("vgg16_gmp")
    features, _ = extract(net, torch.randn(1, 3, 224, 224))
    assert features.shape == (1, 1024, 14, 14)


def test_backbone_weights_from_a_torchvision_state_dict(tmp_path):
    torch.manual_seed(3)
    tv = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save({k: v for k, v in tv.state_dict().items() if k.startswith("features.")}, path)  # no classifier needed
    net = camloc.load_model("alexnet_gap", num_classes=4, backbone_weights=str(path))
    for i in (0, 3, 6, 8, 10):
        assert torch.equal(net.module.trunk[i].weight, tv.features[i].weight)
    assert "backbone_weights" not in net.arch_kwargs  # a checkpoint carries the weights themselves


def test_googlenet_backbone_weights_ignore_aux_heads_and_classifier(tmp_path):
    torch.manual_seed(4)
    tv = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    path = tmp_path / "googlenet.pth"
    torch.save(tv.state_dict(), path)
    net = camloc.load_model("googlenet_gap", num_classes=3, backbone_weights=str(path))
    assert torch.equal(net.module.trunk.inception4e.branch1.conv.weight, tv.inception4e.branch1.conv.weight)
    assert torch.equal(net.module.trunk.conv1.bn.running_var, tv.conv1.bn.running_var)
    assert net.preprocessing.mean == (0.5, 0.5, 0.5)  # torchvision's GoogLeNet weights expect [-1, 1] inputs


def test_backbone_weights_of_another_architecture_are_a_one_line_error(tmp_path):
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet().features.state_dict(), path)  # keys lack the "features." prefix
    with pytest.raises(ModelError, match=r"alexnet\.pth: not torchvision alexnet weights \(missing features\.0\.weight"):
        camloc.load_model("alexnet_gap", num_classes=2, backbone_weights=str(path))
    torch.save({f"features.{k}": v for k, v in torchvision.models.alexnet().features.state_dict().items()}, path)
    with pytest.raises(ModelError, match=r"alexnet\.pth: not torchvision googlenet weights") as err:
        camloc.load_model("googlenet_gap", num_classes=2, backbone_weights=str(path))
    assert "\n" not in str(err.value)
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(ModelError, match=r"junk\.pth: cannot read"):
        camloc.load_model("alexnet_gap", num_classes=2, backbone_weights=str(tmp_path / "junk.pth"))


def test_checkpoint_round_trip_keeps_architecture_options(tmp_path):
    torch.manual_seed(5)
    net = camloc.load_model("alexnet_star_gap", num_classes=3, width=32)
    net.class_names = ["cat", "dog", "bird"]
    path = tmp_path / "net.pt"
    save_checkpoint(net, path)
    back = camloc.load_model(str(path))
    assert back.name == "alexnet_star_gap" and back.class_names == ["cat", "dog", "bird"]
    assert len(convs_of(back.module.extra)) == 3 and back.module.fc.in_features == 32
    x = torch.randn(1, 3, 96, 96)
    torch.testing.assert_close(back(x), net(x), rtol=0, atol=0)


def test_weights_of_a_different_width_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(camloc.load_model("alexnet_gap", num_classes=2, width=8).module.state_dict(), path)
    with pytest.raises(ModelError, match=r"w\.pth: weights do not fit architecture 'alexnet_gap'"):
        camloc.load_model("alexnet_gap", num_classes=2, width=16, weights=str(path))


# ------------------------------------------------------------------------------------- gapify

def test_gapify_resnet_is_exact_with_7x7_maps_and_keeps_the_backbone_weights():
    torch.manual_seed(6)
    base = torchvision.models.resnet18()
    g = gapify(base, num_classes=5, width=64)
    assert default_layer(base) == g.trunk.layer
    assert torch.equal(g.trunk.body.get_submodule("layer4.1.conv2").weight, base.layer4[1].conv2.weight)
    net = camloc.load_model(g)
    x = torch.randn(2, 3, 224, 224)
    features, logits = extract(net, x)
    assert features.shape == (2, 64, 7, 7)
    assert camloc.check_exact(net, x).exact


def test_gapify_cut_at_a_named_layer():
    g = gapify(torchvision.models.resnet18(), num_classes=2, layer="layer3", width=8)
    features = g.features(torch.randn(1, 3, 224, 224))
    assert features.shape == (1, 8, 14, 14)
    assert g.extra[0].in_channels == 256


def test_gapify_on_alexnet_does_the_paper_surgery():
    g = gapify(torchvision.models.alexnet(), num_classes=2, width=16)
    assert g.trunk.layer == "features.11"  # conv5's ReLU: pool5 and the FC stack are gone
    assert len(convs_of(g.trunk)) == 5
    assert g.features(torch.randn(1, 3, 224, 224)).shape == (1, 16, 13, 13)


def test_gapify_errors_are_one_line():
    with pytest.raises(ModelError, match=r"ResNet: no layer 'layer9'"):
        gapify(torchvision.models.resnet18(), layer="layer9")
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(ModelError, match="no global pooling found"):
        gapify(flat)


def test_gapify_by_name_rebuilds_from_its_checkpoint(tmp_path):
    torch.manual_seed(7)
    net = camloc.load_model("gapify", base="resnet18", num_classes=3, width=16, layer="layer3")
    assert net.arch_kwargs["base"] == "resnet18" and net.arch_kwargs["layer"] == "layer3"
    path = tmp_path / "g.pt"
    save_checkpoint(net, path)
    back = camloc.load_model(str(path))
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(back(x), net(x), rtol=0, atol=0)


def test_gapify_is_exported():
    assert camloc.gapify is gapify
