"""The methods' forward passes in ONNX Runtime (camloc.methods.engine): the same maps as PyTorch,
no PyTorch forward once the graph is built, a new graph when the weights change, the net's modes
kept, and PyTorch again (with a one-line warning) where the export fails or disagrees."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from camloc.errors import MethodError
from camloc.methods import get_method
from camloc.methods import engine as engine_mod
from camloc.models.net import CamNet, Preprocessing

FORWARD_ONLY = ("cam", "gradcam", "gradcampp", "xgradcam", "hirescam", "gradcam_elementwise", "layercam", "eigencam",
                "eigengradcam", "kpcacam", "scorecam", "iscam", "ablationcam")


def resnet(classes: int = 5) -> CamNet:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=classes).eval()
    return CamNet(model, "resnet18-random", [f"c{i}" for i in range(classes)], Preprocessing(shape=(64, 64)))


@pytest.fixture(scope="module")
def net():
    return resnet()


@pytest.fixture(scope="module")
def small():
    """A small GAP + linear CNN: the perturbation methods' hundreds of passes stay cheap."""
    import camloc

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 24, 3, stride=2, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5)).eval()
    return camloc.load_model(model, preprocessing=Preprocessing(shape=(64, 64)))


def forwards(model: nn.Module):
    count = {"n": 0}
    return count, model.register_forward_hook(lambda *a: count.__setitem__("n", count["n"] + 1))


def options(name: str) -> dict:
    return {"n": 2} if name == "iscam" else {}


@pytest.mark.parametrize("name", FORWARD_ONLY)
def test_onnxruntime_gives_the_torch_maps_without_a_torch_forward(net, small, name):
    net = small if name in ("scorecam", "iscam", "ablationcam") else net
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[1, 3], [0, 2]])
    torch_maps = get_method(name, **options(name))(net, x, classes)
    method = get_method(name, engine="onnxruntime", **options(name))
    assert method.engine == "onnxruntime"
    first = method(net, x, classes)  # builds (and checks) the graphs
    count, hook = forwards(net.module)
    try:
        again = method(net, x, classes)
    finally:
        hook.remove()
    assert count["n"] == 0, f"{name}: PyTorch ran {count['n']} forward passes after the graph was built"
    scale = torch_maps.detach().abs().max().clamp_min(1e-12)
    for got in (first, again):
        assert got.shape == torch_maps.shape
        assert float((got - torch_maps).detach().abs().max() / scale) < 1e-4, name


def test_a_plain_torchvision_module_and_a_named_layer():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=7).eval()
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for opts in ({}, {"layer": "layer3"}):
        want = get_method("eigencam", **opts)(model, x, [1])
        got = get_method("eigencam", engine="onnxruntime", **opts)(model, x, [1])
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    assert {k[0][0] for k in engine_mod._GRAPHS[model]} == {"forward"}
    assert len(engine_mod._GRAPHS[model]) == 2  # the default layer's pass and layer3's


def test_changed_weights_build_a_new_graph():
    net = resnet()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    method = get_method("gradcampp", engine="onnxruntime")
    before = method(net, x, [0])
    with torch.no_grad():
        net.module.layer4[1].conv2.weight.mul_(-1.5)  # in place
    after = method(net, x, [0])
    want = get_method("gradcampp")(net, x, [0])
    assert not torch.allclose(before, want, atol=1e-3)
    assert torch.allclose(after, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    net.module.fc.weight = nn.Parameter(torch.randn_like(net.module.fc.weight))  # a new tensor
    assert torch.allclose(method(net, x, [0]), get_method("gradcampp")(net, x, [0]), rtol=1e-4, atol=1e-5)


def test_each_input_shape_gets_its_own_graph(net):
    method = get_method("gradcam", engine="onnxruntime")
    for side in (64, 96, 64):
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(side))
        want = get_method("gradcam")(net, x, [2])
        assert torch.allclose(method(net, x, [2]), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    shapes = {k[1] for k in engine_mod._GRAPHS[net.module] if k[0][0] == "forward"}
    assert {(3, 64, 64), (3, 96, 96)} <= shapes


def test_the_export_keeps_every_module_mode():
    net = resnet()
    net.module.train()
    net.module.layer2.eval()
    modes = {n: m.training for n, m in net.module.named_modules()}
    get_method("gradcam", engine="onnxruntime")(net, torch.randn(1, 3, 64, 64), [0])
    assert {n: m.training for n, m in net.module.named_modules()} == modes
    assert engine_mod._GRAPHS[net.module]  # a graph was built (in eval mode, as the method runs)


class Branchy(nn.Module):
    """A branch read in Python from the whole batch: the trace of one image cannot follow it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a = self.conv(x)
        a = a.relu() if float(x.mean()) > 0 else (-a).relu()
        return self.fc(self.pool(a).flatten(1))


def test_a_graph_that_disagrees_warns_once_and_torch_runs_it(capsys):
    model = Branchy().eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4)) - 0.5
    x[0] += 2.0  # the first image (what the trace sees) takes the other branch than the batch
    x[1] -= 4.0
    assert float(x[:1].mean()) > 0 > float(x.mean())
    want = get_method("gradcam")(model, x, [1])
    method = get_method("gradcam", engine="onnxruntime")
    assert torch.equal(method(model, x, [1]), want)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs from PyTorch" in err[0] and "PyTorch runs" in err[0]
    assert torch.equal(method(model, x, [1]), want)
    assert capsys.readouterr().err == ""  # said once per net and shape


def test_an_export_failure_warns_and_torch_runs_it(monkeypatch, capsys):
    model = Branchy().eval()
    x = torch.rand(1, 3, 16, 16)

    def fail(*_a, **_k):
        raise RuntimeError("unsupported operator\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", fail)
    got = get_method("eigencam", engine="onnxruntime")(model, x, [0])
    assert torch.equal(got, get_method("eigencam")(model, x, [0]))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot run in ONNX Runtime" in err[0] and "unsupported operator" in err[0]


def test_a_nan_in_the_first_batch_does_not_fail_the_graph(capsys):
    net = resnet()  # its own: no graph built yet
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    x[1, :, 5, 5] = float("nan")
    method = get_method("gradcam", engine="onnxruntime")
    method(net, x, [0])  # builds the graph on a batch with a NaN
    assert len(engine_mod._GRAPHS[net.module]) == 1
    assert "differs" not in capsys.readouterr().err
    clean = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    count, hook = forwards(net.module)
    try:
        got = method(net, clean, [0])
    finally:
        hook.remove()
    assert count["n"] == 0  # ONNX Runtime ran it
    want = get_method("gradcam")(net, clean, [0])
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_an_empty_batch_builds_no_graph():
    net = resnet()
    method = get_method("eigencam", engine="onnxruntime")
    assert method(net, torch.zeros(0, 3, 64, 64), [1]).shape[0] == 0
    assert not engine_mod._GRAPHS.get(net.module)  # nothing traced or checked on no image
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    want = get_method("eigencam")(net, x, [1])
    assert torch.allclose(method(net, x, [1]), want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    assert len(engine_mod._GRAPHS[net.module]) == 1


def test_inputs_the_engine_cannot_take_run_in_torch():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval().double()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    got = get_method("gradcam", engine="onnxruntime")(model, x, [1])
    assert got.dtype == torch.float64 and torch.equal(got, get_method("gradcam")(model, x, [1]))
    assert model not in engine_mod._GRAPHS


def test_an_unknown_engine_is_one_line():
    with pytest.raises(MethodError, match=r"^method 'gradcam': unknown engine 'tensorrt'; expected one of torch, onnxruntime$"):
        get_method("gradcam", engine="tensorrt")


def test_the_engine_is_scoped_to_the_call(net):
    get_method("gradcam", engine="onnxruntime")(net, torch.randn(1, 3, 64, 64), [0])
    assert engine_mod.current_engine() == "torch"
