"""The perturbation methods (Score-CAM, SS-CAM, IS-CAM, Ablation-CAM): closed forms on a tiny
hand-built net, the exact pooled-vector ablation against the explicit one, chunking, and parity
with pytorch-grad-cam and TorchCAM where they are installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camloc.errors import MethodError
from camloc.methods.ablationcam import AblationCAM
from camloc.methods.iscam import ISCAM
from camloc.methods.perturbation import channel_masks, chunk_size
from camloc.methods.scorecam import ScoreCAM
from camloc.methods.sscam import SSCAM

K, C, H = 4, 3, 6


def tiny(seed: int = 0) -> nn.Sequential:
    """1x1 conv (the target layer) -> ReLU -> GAP -> linear: ``A_j = ReLU(W X)_j`` at input size,
    and ``A(X * m) = m A(X)`` for a mask ``m >= 0``, so every score is written out below."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, K, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(K, C))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net.double().eval()


def parts(net: nn.Sequential, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A (K, H, W)`` of one image, the classifier ``V (C, K)`` and bias ``b (C,)`` as arrays."""
    with torch.no_grad():
        a = net[1](net[0](x))[0].numpy()
    return a, net[4].weight.detach().numpy(), net[4].bias.detach().numpy()


def minmax(m: np.ndarray) -> np.ndarray:
    lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
    return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1), 0)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def combine(alpha: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.maximum(np.einsum("jk,khw->jhw", alpha, a), 0)


@pytest.fixture
def setup():
    net = tiny()
    x = torch.randn(1, 3, H, H, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return net, x, *parts(net, x)


def masked_logits(a, v, b, masks, scale=1.0):
    """Logits of ``X * scale * m_k`` for each mask: ``V mean(scale m_k A) + b`` (m >= 0)."""
    return np.stack([v @ (scale * m[None] * a).mean(axis=(1, 2)) + b for m in masks])


def test_scorecam_closed_form(setup):
    net, x, a, v, b = setup
    classes = torch.tensor([[0, 2]])
    masks = minmax(a)  # the target layer has the input's size: upsampling is the identity
    logits = masked_logits(a, v, b, masks)  # (K, C)
    want = combine(softmax(logits)[:, [0, 2]].T, a)
    np.testing.assert_allclose(ScoreCAM()(net, x, classes)[0].numpy(), want, rtol=1e-10, atol=1e-12)
    # TorchCAM's reading: softmax over channels of the class logits
    want = combine(softmax(logits[:, [0, 2]].T, axis=1), a)
    np.testing.assert_allclose(ScoreCAM(scores="channel-softmax")(net, x, classes)[0].numpy(), want, rtol=1e-10)


def test_iscam_closed_form(setup):
    net, x, a, v, b = setup
    n = 4
    masks = minmax(a)
    coeffs = [sum(j / n for j in range(1, i + 1)) for i in range(1, n + 1)]
    probs = np.mean([softmax(masked_logits(a, v, b, masks, c)) for c in coeffs], axis=0)
    want = combine(probs[:, [1]].T, a)
    np.testing.assert_allclose(ISCAM(n=n)(net, x, torch.tensor([1]))[0].numpy(), want, rtol=1e-10, atol=1e-12)


def test_sscam_closed_form_and_noise_free_limit(setup):
    net, x, a, v, b = setup
    n, sigma = 3, 0.3
    masks = minmax(a)
    g = torch.Generator().manual_seed(5)
    probs = []
    for _ in range(n):
        noisy = masks + sigma * torch.randn(masks.shape, generator=g, dtype=torch.float64).numpy()
        # A(X * m) = ReLU(m W X): a negative mask value flips the sign before the ReLU
        pre = np.einsum("kc,chw->khw", net[0].weight.detach().numpy()[:, :, 0, 0], x[0].numpy())
        probs.append(softmax(np.stack([v @ np.maximum(m[None] * pre, 0).mean(axis=(1, 2)) + b for m in noisy])))
    want = combine(np.mean(probs, axis=0)[:, [2]].T, a)
    got = SSCAM(n=n, sigma=sigma, seed=5)(net, x, torch.tensor([2]))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # sigma 0: every sample is Score-CAM's
    np.testing.assert_allclose(SSCAM(n=2, sigma=0.0)(net, x, torch.tensor([2])).numpy(),
                               ScoreCAM()(net, x, torch.tensor([2])).numpy(), rtol=1e-12)


def test_ablationcam_closed_form_pooled_and_explicit(setup):
    net, x, a, v, b = setup
    p = a.mean(axis=(1, 2))
    y = v @ p + b
    alpha = v * p[None] / y[:, None]  # (y_c - (y_c - v_ck p_k)) / y_c
    want = combine(alpha[[0, 1, 2]], a)
    classes = torch.tensor([[0, 1, 2]])
    pooled = AblationCAM()(net, x, classes)[0].numpy()
    explicit = AblationCAM(pooled=False)(net, x, classes)[0].numpy()
    at_layer = AblationCAM(layer="1")(net, x, classes)[0].numpy()  # a named layer: explicit
    for got in (pooled, explicit, at_layer):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_chunking_does_not_change_maps(setup):
    net, x, *_ = setup
    x2 = torch.cat([x, x.flip(-1)])
    big = ScoreCAM(max_mb=1024)(net, x2, torch.tensor([0, 1]))
    assert chunk_size(net, x[:1], 1e-3) == 1
    small = ScoreCAM(max_mb=1e-3)(net, x2, torch.tensor([0, 1]))  # one channel per forward
    np.testing.assert_allclose(small.numpy(), big.numpy(), rtol=1e-12)
    assert big.shape == (2, 2, H, H)


@pytest.mark.parametrize("make", [lambda: ScoreCAM(), lambda: ScoreCAM(scores="channel-softmax"), lambda: ISCAM(n=3)])
def test_constant_channels_share_one_forward_pass(setup, make):
    """Two dead channels (zero weights: A_k = 0, a zero mask, the input masked to zero): the maps are
    the closed form's, and the network sees the live channels and one constant one, not all four."""
    net, x, *_ = setup
    with torch.no_grad():
        net[0].weight[[1, 3]] = 0.0
    a, v, b = parts(net, x)
    assert np.all(a[[1, 3]] == 0) and np.ptp(a[0]) > 0 and np.ptp(a[2]) > 0
    seen = []
    handle = net[0].register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    method = make()
    try:
        got = method(net, x, torch.tensor([[0, 2]]))[0].numpy()
    finally:
        handle.remove()
    samples = getattr(method, "samples", 1)
    # one-image passes (the activations; the chunk size's estimate, cached per net), then per sample
    # one chunk of the 2 live channels and 1 constant one, never all 4
    assert [n for n in seen if n > 1] == [3] * samples
    full = make()
    full.shares_constant_channels = False  # every channel its own pass
    np.testing.assert_allclose(got, full(net, x, torch.tensor([[0, 2]]))[0].numpy(), rtol=1e-12, atol=1e-15)
    masks = minmax(a)
    if isinstance(method, ISCAM):
        coeffs = [sum(j / samples for j in range(1, i + 1)) for i in range(1, samples + 1)]
        probs = np.mean([softmax(masked_logits(a, v, b, masks, c)) for c in coeffs], axis=0)
        want = combine(probs[:, [0, 2]].T, a)
    elif method.scores == "probability":
        want = combine(softmax(masked_logits(a, v, b, masks))[:, [0, 2]].T, a)
    else:
        want = combine(softmax(masked_logits(a, v, b, masks)[:, [0, 2]].T, axis=1), a)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_channel_masks_constant_channel_is_zero():
    a = torch.stack([torch.ones(2, 2), torch.tensor([[0.0, 1.0], [2.0, 3.0]])])
    m = channel_masks(a, (4, 4))
    assert torch.all(m[0] == 0)
    assert m[1].min() == 0 and m[1].max() == 1
    # a one-cell channel upsampled to 32x32: bilinear weights round differently from cell to cell
    # for some values (a span of one ulp), which min-max scaling would blow up to a [0, 1] mask
    values = torch.rand(64, generator=torch.Generator().manual_seed(0)) * 10
    up = torch.nn.functional.interpolate(values[:, None, None][None], size=(32, 32), mode="bilinear")[0]
    assert int((up.flatten(1).amax(1) > up.flatten(1).amin(1)).sum()) > 0  # the rounding this guards against
    for normalize_first in (False, True):
        assert torch.all(channel_masks(values[:, None, None], (32, 32), normalize_first) == 0)


@pytest.mark.parametrize("make", [lambda: ScoreCAM(scores="logit"), lambda: SSCAM(n=0), lambda: ISCAM(n=0),
                                  lambda: ScoreCAM(max_mb=0)])
def test_bad_options_are_one_line_errors(make):
    with pytest.raises(MethodError) as err:
        make()
    assert "\n" not in str(err.value)


def test_pooled_refused_without_cam_head(setup):
    net, x, *_ = setup
    with pytest.raises(MethodError, match="pooled ablation needs a CAM head"):
        AblationCAM(layer="0", pooled=True)(net, x, torch.tensor([0]))


# -- parity with the peers -------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = tv.models.resnet18(num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    return net, x


def _gradcam_maps(cls, net, x, target: int, layer, **kwargs):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with cls(model=net, target_layers=[layer], **kwargs) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]


def _as_gradcam(maps: torch.Tensor, shape) -> np.ndarray:
    """pytorch-grad-cam's reading: ReLU, min-max (its 1e-7), resized to the input, min-max again
    (its aggregation over target layers)."""
    import cv2

    def minmax(m: np.ndarray) -> np.ndarray:
        m = m - m.min()
        return m / (1e-7 + m.max())

    m = minmax(np.maximum(maps.detach().numpy().astype(np.float32), 0))
    return minmax(np.maximum(cv2.resize(m, (shape[1], shape[0])), 0))


def test_parity_gradcam_scorecam(resnet):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import ScoreCAM as PeerScoreCAM

    net, x = resnet
    peer = _gradcam_maps(PeerScoreCAM, net, x, 3, net.layer2)  # layer2: 128 channels, 128 forward passes
    # pytorch-grad-cam: UpsamplingBilinear2d (corner-aligned), min-max (+1e-8), softmax over channels of logits
    ours = ScoreCAM(layer=net.layer2, align_corners=True, scores="channel-softmax")(net, x, torch.tensor([3]))[0, 0]
    np.testing.assert_allclose(_as_gradcam(ours, x.shape[-2:]), peer, atol=1e-4)


def test_parity_gradcam_ablationcam(resnet):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import AblationCAM as PeerAblationCAM

    net, x = resnet
    peer = _gradcam_maps(PeerAblationCAM, net, x, 4, net.layer4)
    explicit = AblationCAM(layer=net.layer4)(net, x, torch.tensor([4]))[0, 0]
    pooled = AblationCAM()(net, x, torch.tensor([4]))[0, 0]  # the shortcut: no forward pass per channel
    # the pooled vector's ablation is exact: equal to zeroing each channel of layer4 (float32 rounding)
    np.testing.assert_allclose(pooled.numpy(), explicit.numpy(), rtol=1e-4, atol=1e-5 * float(explicit.abs().max()))
    for m in (explicit, pooled):
        np.testing.assert_allclose(_as_gradcam(m, x.shape[-2:]), peer, atol=1e-4)


@pytest.mark.parametrize("name", ["ScoreCAM", "SSCAM", "ISCAM"])
def test_parity_torchcam(resnet, name):
    pytest.importorskip("torchcam")
    import torchcam.methods as tcm

    net, x = resnet
    options = {"SSCAM": {"num_samples": 2, "std": 0.5}, "ISCAM": {"num_samples": 2}}.get(name, {})
    ours_kwargs = {"SSCAM": {"n": 2, "sigma": 0.5}, "ISCAM": {"n": 2}}.get(name, {})
    extractor = getattr(tcm, name)(net, target_layer="layer2", batch_size=512, input_shape=(3, 32, 32), **options)
    with torch.no_grad():
        scores = net(x)
        torch.manual_seed(11)
        peer = extractor(class_idx=5, scores=scores, normalized=False)[0][0].numpy()
    extractor.remove_hooks()
    ours_cls = {"ScoreCAM": ScoreCAM, "SSCAM": SSCAM, "ISCAM": ISCAM}[name]
    torch.manual_seed(11)
    # TorchCAM: min-max before upsampling, softmax over channels of the logits
    ours = ours_cls(layer="layer2", scores="channel-softmax", normalize_first=True, max_mb=4096,
                    **ours_kwargs)(net, x, torch.tensor([5]))[0, 0].numpy()
    np.testing.assert_allclose(ours, peer, rtol=1e-4, atol=1e-6 * float(np.abs(peer).max()))


def test_chunk_estimate_is_per_net_and_forgets_a_freed_net():
    """The bytes-per-item estimate is cached per net object (held weakly), not per ``id``: a net
    built where a freed one lived gets its own estimate."""
    import gc

    from camloc.methods import perturbation

    x1 = torch.zeros(1, 3, H, H, dtype=torch.float64)
    small, wide = tiny(), nn.Sequential(nn.Conv2d(3, 64, 1), nn.ReLU()).double().eval()
    assert perturbation.item_bytes(small, x1) < perturbation.item_bytes(wide, x1)
    assert small in perturbation._ITEM_BYTES and wide in perturbation._ITEM_BYTES
    before = len(perturbation._ITEM_BYTES)
    del wide
    gc.collect()
    assert len(perturbation._ITEM_BYTES) == before - 1
