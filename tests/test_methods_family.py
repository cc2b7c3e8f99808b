"""The new map methods against their formulas on tiny hand-built nets, and each closed-form
shortcut (GAP + linear head: dS/dA = w_c / (h w), no backward) against the autograd path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import camloc
from camloc.errors import MethodError
from camloc.methods import get_method
from camloc.methods.gradients import layer_gradients

# A = conv(x) = (x, 2x - 1) (two channels, no ReLU), S = V vec(A) + b: dS_c/dA = V[c] reshaped, constant.
X = torch.tensor([[[[1.0, -1.0], [2.0, 0.5]]]])
V = torch.tensor([[1.0, -2.0, 0.5, 1.0, 0.25, 1.0, -1.0, 2.0],
                  [-1.0, 1.0, 1.0, 0.0, 2.0, -0.5, 0.5, 1.0],
                  [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])


class FlatHead(nn.Module):
    def __init__(self, q: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.fc = nn.Linear(8, 3)
        self.q = q  # S_c += q (sum A)^2: a Hessian for Shapley-CAM
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, -1.0]))
            self.fc.weight.copy_(V)
            self.fc.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))

    def forward(self, x):
        a = self.conv(x).flatten(1)
        return self.fc(a) + self.q * a.sum(1, keepdim=True) ** 2


A = torch.cat([X, 2 * X - 1], dim=1)[0]  # (2, 2, 2)


def g_of(c: int) -> torch.Tensor:
    return V[c].view(2, 2, 2)


def run(name: str, c: int = 0, net=None, **opt) -> torch.Tensor:
    return get_method(name, layer="conv", **opt)(net or FlatHead().eval(), X, torch.tensor([c]))[0, 0]


@pytest.mark.parametrize("c", [0, 1])
def test_xgradcam_hirescam_elementwise_layercam_formulas(c):
    g = g_of(c)
    w_x = (g * A / (A.sum(dim=(1, 2), keepdim=True) + 1e-7)).sum(dim=(1, 2))
    torch.testing.assert_close(run("xgradcam", c), (w_x[:, None, None] * A).sum(0).clamp_min(0))
    torch.testing.assert_close(run("hirescam", c), (g * A).sum(0).clamp_min(0))
    torch.testing.assert_close(run("gradcam_elementwise", c), (g * A).clamp_min(0).sum(0))
    torch.testing.assert_close(run("layercam", c), (g.clamp_min(0) * A).sum(0).clamp_min(0))


def test_hirescam_sums_to_the_score_on_a_flatten_linear_head():
    net = FlatHead().eval()
    gr = layer_gradients(net, X, torch.tensor([[1]]), ["conv"])
    s = net(X)[0, 1]
    torch.testing.assert_close((gr.grads[0][0] * gr.acts[0]).sum() + net.fc.bias[1], s)


def test_shapleycam_subtracts_half_the_hessian_vector_product():
    # S = V vec(A) + q (sum A)^2: g = V + 2 q sum(A), H A = 2 q sum(A): w = mean(V_k) + q sum(A)
    q = 0.05
    for c in (0, 1):
        w = g_of(c).mean(dim=(1, 2)) + q * A.sum()
        torch.testing.assert_close(run("shapleycam", c, FlatHead(q).eval()), (w[:, None, None] * A).sum(0).clamp_min(0))
    # no Hessian: Grad-CAM
    torch.testing.assert_close(run("shapleycam", 0), run("gradcam", 0))


def test_finercam_contrasts_with_the_closest_classes():
    net = FlatHead().eval()
    s = net(X)[0]
    c = 0
    order = (s - s[c]).abs().argsort()
    refs = [int(i) for i in order if i != c][:1]
    g = g_of(c) - 0.6 * torch.stack([g_of(r) for r in refs]).mean(0)
    expected = (g.mean(dim=(1, 2))[:, None, None] * A).sum(0).clamp_min(0)
    torch.testing.assert_close(run("finercam", c, net, references=1), expected)
    g2 = g_of(c) - 0.5 * (g_of(1) + g_of(2)) / 2
    torch.testing.assert_close(run("finercam", c, net, alpha=0.5, compare=[1, 2]),
                               (g2.mean(dim=(1, 2))[:, None, None] * A).sum(0).clamp_min(0))


def test_smoothgradcampp_averages_the_noisy_gradients():
    q = 0.05
    net = FlatHead(q).eval()
    m = get_method("smoothgradcampp", layer="conv", n=3, sigma=0.2)
    noise = m.noise(X)
    gs = []
    for e in noise:
        a_n = torch.cat([X + e, 2 * (X + e) - 1], dim=1)[0]
        gs.append(g_of(0) + 2 * q * a_n.sum())
    gs = torch.stack(gs)
    d1, d2, d3 = gs.mean(0), (gs**2).mean(0), (gs**3).mean(0)
    alpha = d2 / (2 * d2 + A.sum(dim=(1, 2), keepdim=True) * d3)
    w = (alpha * d1.clamp_min(0)).sum(dim=(1, 2))
    torch.testing.assert_close(m(net, X, torch.tensor([0]))[0, 0], (w[:, None, None] * A).sum(0).clamp_min(0))
    with pytest.raises(MethodError, match="n must be an integer"):
        get_method("smoothgradcampp", n=0)


def test_eigencam_of_a_rank_one_layer_is_its_spatial_pattern():
    # A_k(y, x) = a_k m(y, x) + c_k: centred cells are (m - mean m) a^T, first component (m - mean m)|a|
    class Rank1(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 1)
            with torch.no_grad():
                self.conv.weight.copy_(torch.tensor([1.0, 2.0, -0.5]).view(3, 1, 1, 1))
                self.conv.bias.copy_(torch.tensor([0.3, -1.0, 2.0]))

        def forward(self, x):
            return self.conv(x).mean(dim=(-2, -1))

    m = X[0, 0]
    expected = ((m - m.mean()) * torch.tensor([1.0, 2.0, -0.5]).norm()).clamp_min(0)
    net = Rank1().eval()
    got = get_method("eigencam", layer="conv")(net, X, torch.tensor([0, 1]))
    torch.testing.assert_close(got[0, 0], expected)
    torch.testing.assert_close(got[0, 1], expected)  # class-agnostic
    # KPCA with a linear kernel is Eigen-CAM
    torch.testing.assert_close(get_method("kpcacam", layer="conv", kernel="linear")(net, X, torch.tensor([0]))[0, 0], expected)


def test_eigengradcam_projects_gradient_times_activation():
    net = FlatHead().eval()
    ga = g_of(0) * A
    x = ga.flatten(1).T - ga.flatten(1).T.mean(0)
    v = torch.linalg.svd(x, full_matrices=False).Vh[0]
    p = x @ v
    mean_map = ga.mean(0).flatten() - ga.mean(0).flatten().mean()
    p = p if (p * mean_map).sum() >= 0 else -p
    torch.testing.assert_close(run("eigengradcam", 0, net), p.view(2, 2).clamp_min(0))


def test_kpcacam_matches_scikit_learn_up_to_sign():
    from sklearn.decomposition import KernelPCA

    torch.manual_seed(0)
    a = torch.randn(1, 6, 4, 5, dtype=torch.float64)
    m = get_method("kpcacam")
    got = m.project(a)[0].flatten()
    x = a[0].flatten(1).T.numpy()
    x = x - x.mean(0)
    ref = torch.from_numpy(KernelPCA(n_components=1, kernel="sigmoid").fit_transform(x)[:, 0])
    sign = 1.0 if (got * ref).sum() >= 0 else -1.0
    torch.testing.assert_close(got, sign * ref, rtol=1e-6, atol=1e-8)


def test_eigen_methods_refuse_a_one_channel_layer():
    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x).mean(dim=(-2, -1))

    with pytest.raises(MethodError, match="1 channel"):
        get_method("eigencam", layer="conv")(One().eval(), X, torch.tensor([0]))


def test_layercam_fusion_and_refinecam_on_two_layers():
    class Two(nn.Module):  # conv1 (2x2 grid) -> avgpool (1x1 grid) -> linear
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 2, 1)
            self.conv2 = nn.Conv2d(2, 2, 1)
            with torch.no_grad():
                self.conv1.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
                self.conv1.bias.copy_(torch.tensor([0.0, -1.0]))
                self.conv2.weight.copy_(torch.tensor([[1.0, 0.5], [-0.5, 1.0]]).view(2, 2, 1, 1))
                self.conv2.bias.zero_()
            self.fc = nn.Linear(8, 2)
            with torch.no_grad():
                self.fc.weight.copy_(V[:2])
                self.fc.bias.zero_()

        def forward(self, x):
            return self.fc(self.conv2(self.conv1(x)).flatten(1))

    net = Two().eval()
    from camloc.methods.fusion import minmax

    one = [get_method("layercam", layer=n)(net, X, torch.tensor([0])) for n in ("conv1", "conv2")]
    fused = get_method("layercam", layers=["conv1", "conv2"])(net, X, torch.tensor([0]))
    torch.testing.assert_close(fused, torch.maximum(torch.tanh(2 * minmax(one[0])), torch.tanh(2 * minmax(one[1]))))
    pp = [get_method("gradcampp", layer=n)(net, X, torch.tensor([0])) for n in ("conv1", "conv2")]
    refined = get_method("refinecam", layers="conv1,conv2")(net, X, torch.tensor([0]))
    torch.testing.assert_close(refined, minmax(minmax(pp[0]) * minmax(pp[1])))
    with pytest.raises(MethodError, match="two or more"):
        get_method("refinecam", layers=["conv1"])


def test_fullgrad_hand_computed_and_refusals():
    class Tiny(nn.Module):  # S = 2 mean relu(x + 0.5)
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.relu = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(1, 1, bias=False)
            with torch.no_grad():
                self.conv.weight.fill_(1.0)
                self.conv.bias.fill_(0.5)
                self.fc.weight.fill_(2.0)

        def forward(self, x):
            return self.fc(self.flat(self.pool(self.relu(self.conv(x)))))

    x = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    on = (x + 0.5 > 0).float()[0, 0]  # [[1, 0], [1, 1]]
    gx = 0.5 * on
    inp = (gx * x[0, 0]).abs()  # [[.5, 0], [1, 0]]
    bias = (0.5 * on * 0.5).abs()  # [[.25, 0], [.25, .25]]
    norm = lambda t: (t - t.min()) / (t.max() - t.min())  # noqa: E731
    got = get_method("fullgrad")(Tiny().eval(), x, torch.tensor([0]))[0, 0]
    torch.testing.assert_close(got, norm(inp) + norm(bias))
    silu = nn.Sequential(nn.Conv2d(1, 2, 1), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)).eval()
    with pytest.raises(MethodError, match="SiLU at '1', not piecewise linear"):
        get_method("fullgrad")(silu, x, torch.tensor([0]))
    nobias = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(2, 2)).eval()
    with pytest.raises(MethodError, match="no bias"):
        get_method("fullgrad")(nobias, x, torch.tensor([0]))


def test_fullgrad_is_complete_on_a_resnet():
    # S = sum(grad_x * x) + sum_l sum(dS/dz_l * b_l) (+ the linear head's bias): the terms before psi
    from torchvision.models import resnet18

    from camloc.methods.fullgrad import check_exact, implicit_bias

    torch.manual_seed(0)
    net = resnet18(num_classes=3).eval()
    x = torch.randn(1, 3, 32, 32)
    layers = check_exact(net)
    from contextlib import ExitStack

    from camloc.hooks import capture

    with ExitStack() as st:
        stores = [st.enter_context(capture(m, "output")) for m in layers]
        inp = x.clone().requires_grad_(True)
        s = net(inp)[0, 1]
        gx, *gz = torch.autograd.grad(s, [inp, *[t["value"] for t in stores]])
    total = (gx * inp).sum() + sum((g * implicit_bias(m).view(1, -1, 1, 1)).sum() for g, m in zip(gz, layers)) + net.fc.bias[1]
    torch.testing.assert_close(total, s.detach(), rtol=1e-4, atol=1e-4)


def test_baselines():
    x = torch.zeros(2, 3, 8, 12)
    c = get_method("center", sigma=0.25)(None, x, torch.tensor([0, 1]))
    assert c.shape == (2, 2, 8, 12)
    # pixel (y=0, x=0): centre offsets (0.5 - 4) / 2 and (0.5 - 6) / 3
    torch.testing.assert_close(c[0, 0, 0, 0], torch.exp(torch.tensor(-0.5 * ((3.5 / 2) ** 2 + (5.5 / 3) ** 2))))
    torch.testing.assert_close(c[0, 0], c[0, 0].flip(0).flip(1))
    r1 = get_method("random", seed=3)(None, x, torch.tensor([0]))
    r2 = get_method("random", seed=3)(None, x, torch.tensor([0]))
    assert torch.equal(r1, r2) and r1.shape == (2, 1, 8, 12) and 0 <= r1.min() and r1.max() <= 1
    assert not torch.equal(r1[0], r1[1])
    with pytest.raises(MethodError, match="sigma must be"):
        get_method("center", sigma=float("nan"))


@pytest.fixture(scope="module")
def resnet():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return camloc.load_model(resnet18(num_classes=5).eval())


def test_closed_form_equals_autograd(resnet):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[1, 4], [0, 2]])
    fast = layer_gradients(resnet, x, classes)
    slow = layer_gradients(resnet, x, classes, closed_form=False)
    assert fast.closed_form and not slow.closed_form
    torch.testing.assert_close(fast.acts[0], slow.acts[0].detach())
    for j in range(2):
        torch.testing.assert_close(fast.grads[j][0], slow.grads[j][0], rtol=1e-4, atol=1e-9)
    # each method's map from the closed-form gradients equals its map through autograd
    for name in ("gradcam", "gradcampp", "xgradcam", "hirescam", "gradcam_elementwise", "layercam", "eigengradcam"):
        m = get_method(name)
        for j in range(2):
            a = slow.acts[0].detach()
            got, want = m.cam_image(fast.acts[0], fast.grads[j][0]), m.cam_image(a, slow.grads[j][0].detach())
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()), msg=name)
    # and the methods themselves take the closed form by default
    torch.testing.assert_close(get_method("xgradcam")(resnet, x, classes),
                               get_method("xgradcam", closed_form=False)(resnet, x, classes), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(get_method("smoothgradcampp", n=2)(resnet, x, classes),
                               get_method("gradcampp")(resnet, x, classes), rtol=1e-4, atol=1e-7)


def test_legrad_on_a_tiny_vit_and_refusal():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=4, img_size=32, depth=2).eval()
    x = torch.randn(2, 3, 32, 32)
    m = get_method("legrad")(vit, x, torch.tensor([[1], [3]]))
    assert m.shape == (2, 1, 2, 2) and (m >= 0).all() and m.sum() > 0
    # the last block alone: d logit / d (last block's attention probabilities), as a hook reads it
    blk = vit.blocks[-1].attn
    store = {}
    blk.fused_attn = False
    h = blk.attn_drop.register_forward_hook(lambda _m, _i, o: store.setdefault("p", o))
    try:
        logits = vit(x)
        (g,) = torch.autograd.grad(logits.gather(1, torch.tensor([[1], [3]])).sum(), store["p"])
    finally:
        h.remove()
        blk.fused_attn = True
    expected = g.clamp_min(0).mean(dim=(1, 2))[:, 1:].view(2, 1, 2, 2)
    torch.testing.assert_close(get_method("legrad", blocks=1)(vit, x, torch.tensor([[1], [3]])), expected)
    assert vit.blocks[-1].attn.fused_attn  # restored
    # the one-layer methods read the patch-token grid by default on a class-token ViT
    for name in ("xgradcam", "hirescam", "layercam", "eigencam"):
        got = get_method(name)(vit, x, torch.tensor([[1], [3]]))
        assert got.shape == (2, 1, 2, 2) and torch.isfinite(got).all(), name
    with pytest.raises(MethodError, match="not a timm vision transformer"):
        get_method("legrad")(FlatHead().eval(), X, torch.tensor([0]))


def test_refinecam_without_layers_takes_the_stage_before_the_default_layer():
    """RefineCAM's default layers: the input of the shallowest module that halves the grid into
    the default layer's (a ResNet's layer4, so layer3's output) and the default layer; the same
    maps as naming layer3 and layer4. A net with no coarser stage is refused in one line."""
    import torchvision

    from camloc.methods.base import previous_stage

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    module, where = previous_stage(model, x)
    assert module is model.layer4 and where == "input"
    got = get_method("refinecam")(model, x, torch.tensor([[1], [3]]))
    torch.testing.assert_close(got, get_method("refinecam", layers="layer3,layer4")(model, x, torch.tensor([[1], [3]])))
    assert got.shape == (2, 1, 4, 4)  # layer3's grid, the larger of the two

    class Flat(nn.Module):  # one grid all the way: no stage before the last layer
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.pool(self.conv(x)).flatten(1))

    with pytest.raises(MethodError, match="no stage before the default layer"):
        get_method("refinecam")(Flat().eval(), torch.randn(1, 3, 8, 8), torch.tensor([0]))
