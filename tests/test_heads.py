"""Head finding: every supported architecture gives exact CAMs; non-exact heads are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import camloc
from camloc.errors import HeadError
from camloc.models.heads import find_head


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give the classifier and BatchNorm statistics non-trivial values, so exactness is a real test
    (torchvision zero-initializes many biases, which would make logits tiny)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
    return module.eval()


ARCHS = {
    "swin_t": 64,  # the normalized token grid, average-pooled
    "swin_v2_t": 64,
    "resnet18": 64,
    "densenet121": 64,
    "googlenet": 64,
    "inception_v3": 96,
    "efficientnet_b0": 64,
    "mobilenet_v2": 64,
    "regnet_y_400mf": 64,
    "shufflenet_v2_x0_5": 64,
    "mnasnet0_5": 64,
}


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_torchvision_architectures_are_exact(name):
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    module = _randomize(torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs))
    net = camloc.load_model(module)
    size = ARCHS[name]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    report = camloc.check_exact(net, x)
    assert report.scale > 0.5, "logits too small for the check to mean anything"
    assert report.exact, str(report)
    out = camloc.cam(net, x, topk=3)
    recon = out.maps.mean((-2, -1)) + out.bias[out.classes]
    assert torch.allclose(recon, out.logits.gather(1, out.classes), rtol=1e-4, atol=1e-4)


def test_default_lite0_head_and_map_size(lite0):
    head = lite0.head
    assert head.exact and head.classifier.in_features == 1280 and lite0.num_classes == 1000
    report = camloc.check_exact(lite0)
    assert report.exact, str(report)
    assert lite0.class_names[285] == "Egyptian cat"


def test_densenet_functional_relu_is_applied():
    """DenseNet applies ReLU functionally after its last module: without it CAM would not be exact."""
    module = _randomize(torchvision.models.densenet121(weights=None, num_classes=5))
    net = camloc.load_model(module)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    assert camloc.check_exact(net, x).exact
    net.head.post = None
    assert not camloc.check_exact(net, x).exact


@pytest.mark.parametrize(
    "name, reason",
    [
        ("vgg11", "fully connected stack"),
        ("alexnet", "fully connected stack"),
        ("mobilenet_v3_small", "two-layer head"),
        ("vit_b_16", "class-token head"),
    ],
)
def test_non_exact_heads_are_refused_with_one_line(name, reason):
    module = torchvision.models.get_model(name, weights=None)
    with pytest.raises(HeadError) as err:
        camloc.load_model(module)
    message = str(err.value)
    assert reason in message and "\n" not in message and "gapify" in message


def test_generic_head_search_and_refusal():
    ok = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                       nn.Linear(4, 3))
    net = camloc.load_model(_randomize(ok))
    assert isinstance(net.head.classifier, nn.Linear) and net.head.exact
    assert camloc.check_exact(net, torch.randn(2, 3, 8, 8)).exact
    gmp = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert find_head(gmp).pooling == "max" and not find_head(gmp).exact
    assert not camloc.check_exact(camloc.load_model(_randomize(gmp)), torch.randn(2, 3, 8, 8)).exact
    stacked = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4), nn.ReLU(),
                            nn.Linear(4, 2))
    with pytest.raises(HeadError, match="not one linear layer"):
        find_head(stacked)
    with pytest.raises(HeadError, match="no global pooling"):
        find_head(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)))


def test_hook_is_removed_after_an_exception(tiny_gap):
    net = camloc.load_model(tiny_gap)
    with pytest.raises(RuntimeError):
        camloc.cam(net, torch.zeros(1, 3, 2, 2))  # wrong channel count: conv raises
    assert not net.head.feature_module._forward_pre_hooks


class PooledLayerNorm(nn.Module):
    """Identity trunk -> GAP -> LayerNorm (no eps) -> linear, with written-out values.

    Input/features ``f0 = [[1, 3]]``, ``f1 = [[2, 6]]`` (2 channels, a 1x2 map): pooled
    ``p = [2, 4]``, ``μ = 3``, ``σ = 1``; with ``γ = [2, 1]``, ``β = [0.5, -1]`` the norm gives
    ``LN(p) = [-1.5, 0]``. With ``W = [[1, 1], [1, -1]]``, ``b = [0, 1]`` the scores are
    ``S = [-1.5, -0.5]``. The normalized features ``f' = γ (f - μ) / σ`` are ``f'0 = [-4, 0]``,
    ``f'1 = [-1, 3]`` (means ``[-2, 1] = LN(p) - β``), the maps ``M0 = [-5, 3]`` (mean -1) and
    ``M1 = [-3, -3]`` (mean -3), and the effective bias ``W β + b = [-0.5, 2.5]``:
    ``-1 - 0.5 = -1.5`` and ``-3 + 2.5 = -0.5``, the scores.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.LayerNorm(2, eps=0.0)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.norm.weight.copy_(torch.tensor([2.0, 1.0]))
            self.norm.bias.copy_(torch.tensor([0.5, -1.0]))
            self.fc.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, 1.0]))

    def forward(self, x):
        return self.fc(self.norm(torch.flatten(self.pool(x), 1)))


LN_INPUT = torch.tensor([[[[1.0, 3.0]], [[2.0, 6.0]]]])  # (1, 2, 1, 2)


def test_layernorm_after_pooling_written_out():
    net = camloc.load_model(PooledLayerNorm())
    assert net.head.norm is net.module.norm and net.head.exact
    out = camloc.cam(net, LN_INPUT, classes=torch.tensor([0, 1]))
    assert torch.allclose(out.logits, torch.tensor([[-1.5, -0.5]]))
    assert torch.allclose(out.features, torch.tensor([[[[-4.0, 0.0]], [[-1.0, 3.0]]]]))
    assert torch.allclose(out.maps, torch.tensor([[[[-5.0, 3.0]], [[-3.0, -3.0]]]]))
    assert torch.allclose(out.bias, torch.tensor([-0.5, 2.5]))
    recon = out.maps.mean((-2, -1)) + out.bias[out.classes]
    assert torch.allclose(recon, out.logits.gather(1, out.classes))
    report = camloc.check_exact(net, LN_INPUT)
    assert report.exact and report.max_abs_error < 1e-6, str(report)


def test_eval_batchnorm_after_pooling_written_out():
    """GAP -> BatchNorm1d (eval) -> linear: running mean [1, 2], var [4, 1] (eps 0), γ [1, 3],
    β [1, 0]; W = [[1, 2]], b = [0.5]. For f0 = [[1, 3]], f1 = [[2, 6]]: p = [2, 4],
    BN(p) = [(2-1)/2 + 1, 3 (4-2)/1] = [1.5, 6], S = 1.5 + 12 + 0.5 = 14. f' = γ (f - m) / s:
    f'0 = [0, 1], f'1 = [0, 12]; M = f'0 + 2 f'1 = [0, 25] (mean 12.5); bias W β + b = 1.5."""
    bn = nn.BatchNorm1d(2, eps=0.0)
    fc = nn.Linear(2, 1)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0]))
        bn.weight.copy_(torch.tensor([1.0, 3.0]))
        bn.bias.copy_(torch.tensor([1.0, 0.0]))
        fc.weight.copy_(torch.tensor([[1.0, 2.0]]))
        fc.bias.copy_(torch.tensor([0.5]))
    net = camloc.load_model(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), bn, fc))
    out = camloc.cam(net, LN_INPUT, topk=1)
    assert torch.allclose(out.logits, torch.tensor([[14.0]]))
    assert torch.allclose(out.maps, torch.tensor([[[[0.0, 25.0]]]]))
    assert torch.allclose(out.bias, torch.tensor([1.5]))
    assert camloc.check_exact(net, LN_INPUT).exact


def test_convnext_layernorm_head_is_exact():
    """torchvision ConvNeXt: avgpool -> LayerNorm2d -> Flatten -> Linear; exact with the
    normalized features, not exact without them."""
    module = torchvision.models.convnext_tiny(weights=None, num_classes=10)
    _randomize(module)
    with torch.no_grad():  # a non-trivial norm after pooling, so the test sees γ and β
        norm = module.classifier[0]
        norm.weight.copy_(torch.rand(norm.weight.shape, generator=torch.Generator().manual_seed(4)) + 0.5)
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=torch.Generator().manual_seed(5)))
    net = camloc.load_model(module)
    assert net.head.norm is norm and net.head.feature_module is module.avgpool
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    report = camloc.check_exact(net, x)
    assert report.scale > 0.5 and report.exact, str(report)
    out = camloc.cam(net, x, topk=3)
    assert out.maps.shape == (2, 3, 2, 2)
    recon = out.maps.mean((-2, -1)) + out.bias[out.classes]
    assert torch.allclose(recon, out.logits.gather(1, out.classes), rtol=1e-4, atol=1e-4)
    net.head.post = None  # the raw features: not exact
    assert not camloc.check_exact(net, x).exact


def test_pooled_norm_refusals():
    gmp_norm = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.LayerNorm(4), nn.Linear(4, 2))
    with pytest.raises(HeadError, match="not one linear layer"):
        find_head(gmp_norm)
    two_d = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm((2, 2)), nn.Linear(2, 2))
    with pytest.raises(HeadError, match="not one linear layer") as err:
        find_head(two_d)
    assert "\n" not in str(err.value)


def test_gradient_methods_read_the_pooled_norm_head():
    """At the default layer the activations are the normalized features f' and the scores the
    model's (W β included), so Grad-CAM on a GAP head is ReLU(M_c) / hw: [0, 1.5] and [0, 0]."""
    from camloc.methods import GradCAM
    from camloc.methods.base import scores_and_activations

    net = camloc.load_model(PooledLayerNorm())
    scores, acts = scores_and_activations(net, LN_INPUT, None)
    assert torch.allclose(scores, torch.tensor([[-1.5, -0.5]]))
    assert torch.allclose(acts, torch.tensor([[[[-4.0, 0.0]], [[-1.0, 3.0]]]]))
    maps = GradCAM()(net, LN_INPUT, torch.tensor([[0, 1]]))
    assert torch.allclose(maps, torch.tensor([[[[0.0, 1.5]], [[0.0, 0.0]]]]))


COVERAGE = Path(__file__).resolve().parent.parent / "docs" / "coverage.md"


def test_coverage_table_lists_every_torchvision_architecture():
    from tools.coverage import TIMM, parse

    table = parse(COVERAGE.read_text())
    names = set(torchvision.models.list_models(module=torchvision.models))
    assert names <= set(table), f"missing from docs/coverage.md: {sorted(names - set(table))}"
    assert len(table) == len(names) + len(TIMM)
    assert all(verdict in ("exact", "max-pooled", "refused") for verdict, _ in table.values())


@pytest.mark.parametrize("name", ["resnet18", "convnext_tiny", "squeezenet1_1", "vgg11", "mobilenet_v3_small",
                                  "swin_t", "vit_b_32", "shufflenet_v2_x0_5"])
def test_coverage_table_verdicts_hold(name):
    from tools.coverage import parse, torchvision_row

    verdict, detail = parse(COVERAGE.read_text())[name]
    row = torchvision_row(name)
    assert row.verdict == verdict
    if verdict == "refused":
        assert row.detail == detail
    else:
        assert float(row.detail.split()[0]) <= 1e-4 * float(row.detail.split()[-1])
