"""Map methods on tiny nets with hand-computed maps (TinyGap from conftest: M0 = 2 relu(x),
M1 = relu(x), GAP over a 2x2 map, W = [[1, 0.5], [-1, 1]])."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import camloc
from camloc.methods import CAM, Backprop, GradCAM, GradCAMpp, get_method
from camloc.errors import HeadError

X = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])  # (1, 1, 2, 2); relu(x) = [[1, 0], [2, 0]]
BOTH = torch.tensor([[0, 1]])


def test_cam_method_gives_the_class_maps(tiny_gap):
    m = CAM()(camloc.load_model(tiny_gap), X, BOTH)
    assert m.tolist() == [[[[2.0, 0.0], [4.0, 0.0]], [[1.0, 0.0], [2.0, 0.0]]]]


def test_gradcam_is_relu_cam_over_hw_on_a_gap_head(tiny_gap):
    # dS_c/dA_k = W[c, k] / 4, so M_c = ReLU(CAM_c) / 4
    m = GradCAM()(tiny_gap, X, BOTH)
    assert m.tolist() == [[[[0.5, 0.0], [1.0, 0.0]], [[0.25, 0.0], [0.5, 0.0]]]]


def test_gradcampp_hand_computed(tiny_gap):
    # class 0: g = (1/4, 1/8), sums of A = (3, 6): a = 4/11 for both channels,
    #   w = 4 * a * relu(g) = (4/11, 2/11), M0 = 4/11 relu(x) + 2/11 * 2 relu(x) = 8/11 relu(x)
    # class 1: g = (-1/4, 1/4): w0 = 0, a1 = (1/16) / (2/16 + 6/64) = 2/7, w1 = 2/7,
    #   M1 = 2/7 * 2 relu(x) = 4/7 relu(x)
    m = GradCAMpp()(tiny_gap, X, BOTH)
    expected = torch.tensor([[[[8 / 11, 0.0], [16 / 11, 0.0]], [[4 / 7, 0.0], [8 / 7, 0.0]]]])
    torch.testing.assert_close(m, expected)


def test_backprop_is_the_input_gradient_magnitude(tiny_gap):
    # S_c = mean(W[c,0] relu(x) + W[c,1] relu(2x)) + b: dS/dx = (W[c,0] + 2 W[c,1]) / 4 where x > 0
    m = Backprop()(tiny_gap, X, BOTH)
    assert m.tolist() == [[[[0.5, 0.0], [0.5, 0.0]], [[0.25, 0.0], [0.25, 0.0]]]]


def test_classes_per_image_and_shared():
    torch.manual_seed(0)
    from torchvision.models import resnet18

    net = camloc.load_model(resnet18(num_classes=4).eval())
    x = torch.randn(2, 3, 64, 64)
    cam_maps = CAM()(net, x, torch.tensor([[1, 2], [3, 0]]))
    grad_maps = GradCAM()(net, x, torch.tensor([[1, 2], [3, 0]]))
    assert cam_maps.shape == grad_maps.shape == (2, 2, 2, 2)
    # on a GAP + linear head, Grad-CAM at the CAM features is ReLU(CAM) / (h w)
    torch.testing.assert_close(grad_maps, cam_maps.clamp_min(0) / 4, rtol=1e-4, atol=1e-5)
    shared = GradCAM()(net, x, torch.tensor([2]))
    torch.testing.assert_close(shared[0, 0], grad_maps[0, 1])


class FcHead(nn.Module):
    """conv (1 -> 2, 1x1, weights 1 and 2) -> ReLU -> flatten -> Linear(8, 3) -> ReLU -> Linear(3, 2):
    a head where CAM is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 2))
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
            self.fc[1].weight.copy_(torch.arange(24, dtype=torch.float32).view(3, 8) / 24)
            self.fc[1].bias.zero_()
            self.fc[3].weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.0, 1.0, 1.0]]))
            self.fc[3].bias.zero_()

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)))


def test_gradient_methods_work_where_cam_is_refused():
    net = FcHead().eval()
    with pytest.raises(HeadError):
        camloc.load_model(net)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # Target: the conv output A = (x, 2x). All hidden units are positive, so S = W2 W1 vec(A):
    # dS_c/dA = (W2 W1)[c] reshaped (2, 2, 2); Grad-CAM weights are its per-channel means.
    w1 = torch.arange(24, dtype=torch.float32).view(3, 8) / 24
    w2 = torch.tensor([[1.0, -1.0, 0.5], [0.0, 1.0, 1.0]])
    a = torch.cat([x, 2 * x], dim=1)[0]
    for c in (0, 1):
        g = (w2 @ w1)[c].view(2, 2, 2)
        expected = (g.mean(dim=(1, 2))[:, None, None] * a).sum(0).clamp_min(0)
        got = GradCAM(layer="conv")(net, x, torch.tensor([c]))[0, 0]
        torch.testing.assert_close(got, expected)
        got_default = GradCAM()(net, x, torch.tensor([c]))[0, 0]  # last Conv2d by default
        torch.testing.assert_close(got_default, expected)


def test_unknown_method_and_layer_are_one_line_errors(tiny_gap):
    with pytest.raises(ValueError, match="unknown map method 'nope'"):
        get_method("nope")
    with pytest.raises(ValueError, match="no layer named 'missing'"):
        GradCAM(layer="missing")(tiny_gap, X, BOTH)
    with pytest.raises(ValueError, match="takes no target layer"):
        get_method("cam", layer="conv")
    assert isinstance(get_method("gradcampp", layer="conv"), GradCAMpp)


# --------------------------------------------------------------------------- DenseNet: textbook Grad-CAM(++)
def _textbook(model, x, classes, at_norm5: bool, plus: bool) -> torch.Tensor:
    """Grad-CAM / Grad-CAM++ written out on torchvision's DenseNet, no hooks: ``A`` is the
    ``features`` output (``features.norm5``'s) or the ReLU of it that the head pools, the score
    ``S = classifier(mean_xy relu(features))``."""
    import torch.nn.functional as F

    with torch.enable_grad():
        f = model.features(x)
        a = f if at_norm5 else F.relu(f)
        scores = model.classifier((F.relu(a) if at_norm5 else a).mean(dim=(-2, -1)))
        maps = []
        for j in range(classes.shape[1]):
            (g,) = torch.autograd.grad(scores.gather(1, classes[:, j : j + 1]).sum(), a, retain_graph=True)
            if plus:
                denom = 2 * g**2 + a.sum(dim=(-2, -1), keepdim=True) * g**3
                alpha = torch.where(denom != 0, g**2 / torch.where(denom != 0, denom, 1.0), 0.0)
                w = (alpha * g.clamp_min(0)).sum(dim=(-2, -1))
            else:
                w = g.mean(dim=(-2, -1))
            maps.append((w[:, :, None, None] * a).sum(dim=1).clamp_min(0))
    return torch.stack(maps, dim=1).detach()


@pytest.fixture(scope="module")
def densenet():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None, num_classes=6).eval()
    with torch.no_grad():  # a non-trivial head (torchvision zero-initializes its bias)
        model.classifier.weight.normal_(0, 0.5)
        model.classifier.bias.normal_(0, 0.5)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    return model, x


@pytest.mark.parametrize("plus", [False, True], ids=["gradcam", "gradcampp"])
@pytest.mark.parametrize("layer", [None, "features.norm5"])
@pytest.mark.parametrize("wrap", [False, True], ids=["module", "camnet"])
def test_densenet_gradient_maps_equal_the_textbook(densenet, plus, layer, wrap):
    model, x = densenet
    classes = torch.tensor([[3, 0], [5, 1]])
    method = (GradCAMpp if plus else GradCAM)(layer=layer)
    got = method(camloc.load_model(model) if wrap else model, x, classes)
    expected = _textbook(model, x, classes, at_norm5=layer is not None, plus=plus)
    assert got.shape == (2, 2, 3, 3) and expected.abs().sum() > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_densenet_default_gradcam_is_relu_cam_over_hw(densenet):
    model, x = densenet
    net = camloc.load_model(model)
    classes = torch.tensor([[3, 0], [5, 1]])
    cam = CAM()(net, x, classes)
    torch.testing.assert_close(GradCAM()(net, x, classes), cam.clamp_min(0) / 9, rtol=1e-4, atol=1e-6)
    # the two layers differ where norm5 is negative: the capture kept the value before the ReLU
    assert not torch.allclose(GradCAM(layer="features.norm5")(net, x, classes), cam.clamp_min(0) / 9)
