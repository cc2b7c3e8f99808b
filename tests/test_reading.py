"""Reading a map (percentile and mean+std normalizations, negative-weight clamping) and
test-time augmentation (flip, scales): closed-form values on hand-built nets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from camloc.boxes import boxes_from_map, mask_from_map
from camloc.cam import positive_weights
from camloc.readings import map_status, norm_bounds, normalize_map, parse_norm, upsample
from camloc.localize import iter_localize
from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.pipeline import Pipeline, Resize
from camloc.tta import TTA, fused_maps, iter_views, parse_tta

# --------------------------------------------------------------------------- readings


def test_percentile_and_meanstd_bounds_written_out():
    m = np.array([[-4.0, 0.0], [1.0, 3.0]])
    assert norm_bounds(m, "minmax") == (-4.0, 3.0)
    assert norm_bounds(m, "positive") == (0.0, 3.0)
    assert norm_bounds(m, "percentile") == (0.5, 3.0)  # the median of -4, 0, 1, 3
    assert norm_bounds(m, "percentile:0") == (-4.0, 3.0)
    # mean 0, std sqrt(26) / 2 = 2.5495: K=2 reaches past the max, so the top is the max
    assert norm_bounds(m, "meanstd") == (0.0, 3.0)
    lo, hi = norm_bounds(m, "meanstd:1")
    assert lo == 0.0 and hi == pytest.approx(np.sqrt(26) / 2)
    np.testing.assert_allclose(normalize_map(m, "percentile"), [[0, 0], [0.2, 1]], atol=1e-7)
    np.testing.assert_allclose(normalize_map(m, "meanstd:1"), [[0, 0], [1 / 2.5495098, 1]], atol=1e-6)


def test_a_negative_outlier_widens_the_minmax_box_but_not_the_percentile_one():
    m = np.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, -20.0]])
    # min-max at 0.2 cuts at -20 + 0.2 * 25 = -15: all but the outlier, box = the whole map
    assert boxes_from_map(m, 0.2) == [[0, 0, 2, 2]]
    # the median floor (1) cuts at 1 + 0.2 * 4 = 1.8: the peak alone
    assert boxes_from_map(m, 0.2, norm="percentile") == [[1, 1, 1, 1]]
    # mean -1/9, std 6.94: K=2 puts the top at the max (5); cut at -0.11 + 0.2 * 5.11 = 0.91
    assert boxes_from_map(m, 0.2, norm="meanstd") == [[0, 0, 2, 2]]
    assert mask_from_map(m, 0.2, "meanstd").sum() == 8


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (5, 6), elements=st.floats(-50, 50, width=32)), st.floats(0, 0.99))
def test_every_reading_thresholds_its_own_normalized_map(m, t):
    for norm in ("minmax", "positive", "percentile", "percentile:20", "meanstd", "meanstd:0.5"):
        mask = mask_from_map(m, t, norm)
        if map_status(m, norm) is not None:
            assert not mask.any()
            continue
        n = normalize_map(m, norm)
        assert n.min() >= 0 and n.max() <= 1 and n.max() == 1
        lo, hi = norm_bounds(m, norm)
        np.testing.assert_array_equal(mask, m > np.float32(lo + t * (hi - lo)))
    np.testing.assert_array_equal(mask_from_map(m, t, "percentile:0"), mask_from_map(m, t, "minmax"))


def test_constant_maps_and_bad_readings():
    assert map_status(np.full((3, 3), 2.0), "percentile") == "constant map"
    assert map_status(np.full((3, 3), 2.0), "meanstd") == "constant map"
    # the median equals the max when more than half the map is at its peak
    assert map_status(np.array([[0.0, 1.0, 1.0]]), "percentile") == "constant map"
    assert parse_norm("percentile:12.5") == ("percentile", 12.5)
    for bad, words in [("median", "unknown map normalization"), ("minmax:3", "takes no parameter"),
                       ("percentile:100", "[0, 100)"), ("meanstd:0", "positive"), ("meanstd:x", "not a number")]:
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace(")", r"\)")):
            parse_norm(bad)


def test_positive_weights_written_out():
    w = np.array([[1.0, -2.0], [-0.5, 3.0]], np.float32)
    np.testing.assert_array_equal(positive_weights(w), [[1, 0], [0, 3]])
    assert positive_weights(torch.from_numpy(w)).tolist() == [[1, 0], [0, 3]]
    assert w[0, 1] == -2.0  # pure: the input is left alone


# --------------------------------------------------------------------------- hand-built nets


class Pointwise(nn.Module):
    """Features ``f = (R, G)`` of the [0, 1] input (a 1x1 conv), GAP, ``W = [[1, -1], [-0.5, 2]]``,
    ``b = [0, 0.1]``: maps ``M0 = R - G``, ``M1 = 2G - R/2``; clamped, ``R`` and ``2G``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).view(2, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0], [-0.5, 2.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, 0.1]))

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


class Lopsided(nn.Module):
    """A seeded 3x3 conv net: its features are not mirror-symmetric."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            for p in self.conv.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))

    def camloc_head(self) -> Head:
        return Head(self.pool, self.fc, "input")


PLAIN = Preprocessing(shape=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _net(module: nn.Module, n: int) -> CamNet:
    return CamNet(module.eval(), type(module).__name__.lower(), [f"c{i}" for i in range(n)], PLAIN)


def _image(w: int = 48, h: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.full((h, w, 3), 40, np.uint8)
    a[8:20, 6:30, 0] = 230  # a red patch left of centre
    a[24:36, 30:44, 1] = 200  # a green one lower right
    return np.clip(a.astype(int) + rng.integers(-5, 6, a.shape), 0, 255).astype(np.uint8)


def test_clamped_maps_are_the_positive_weights_maps_and_scores_do_not_change():
    net = _net(Pointwise(), 2)
    img = _image()
    plain = next(Pipeline(net, resize=Resize("aspect", 32), backend="torch", topk=2, workers=0,
                          progress=False).run([img]))
    clamped = next(Pipeline(net, resize=Resize("aspect", 32), backend="torch", topk=2, workers=0, progress=False,
                            clamp_negative=True).run([img]))
    np.testing.assert_array_equal(plain.logits, clamped.logits)
    x = cv2.resize(img, plain.input_size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    r, g = x[..., 0], x[..., 1]
    by_class = dict(zip(plain.classes.tolist(), plain.maps))
    np.testing.assert_allclose(by_class[0], r - g, atol=1e-5)
    np.testing.assert_allclose(by_class[1], 2 * g - r / 2, atol=1e-5)
    by_class = dict(zip(clamped.classes.tolist(), clamped.maps))
    np.testing.assert_allclose(by_class[0], r, atol=1e-5)
    np.testing.assert_allclose(by_class[1], 2 * g, atol=1e-5)


def test_a_paired_pass_holds_the_mirror_images_pass_mirrored_back():
    from camloc.pipeline.backends import TorchBackend
    from camloc.tta import Paired

    net = _net(Lopsided(), 3)
    img = _image(56, 40)
    kw = dict(resize=Resize("aspect", 32), topk=0, workers=0, progress=False, keep="features")
    paired = next(Pipeline(net, backend=Paired(TorchBackend(net)), **kw).run([img]))
    mirror = next(Pipeline(net, backend="torch", **kw).run([np.ascontiguousarray(img[:, ::-1])]))
    direct = next(Pipeline(net, backend="torch", **kw).run([img]))
    assert paired.features.shape[0] == 8 and paired.logits.shape == (6,)
    np.testing.assert_allclose(paired.features[:4], direct.features, atol=1e-5)
    np.testing.assert_allclose(paired.features[4:], mirror.features[..., ::-1], atol=1e-5)
    np.testing.assert_allclose(paired.logits, np.concatenate([direct.logits, mirror.logits]), atol=1e-5)
    assert not np.allclose(mirror.features[..., ::-1], direct.features, atol=1e-2)  # the net does see the mirror
    with pytest.raises(ValueError, match="gradient method"):
        Pipeline(net, clamp_negative=True, method=object(), backend="torch")


def test_fused_maps_average_every_view_upsampled_to_the_grid():
    net = _net(Lopsided(), 3)
    img = _image(56, 40)
    tta = TTA((32, 64), flip=True)
    assert tta.views() == [(32, False), (64, False), (32, True), (64, True)]
    views = next(iter_views(net, [img], tta, backend="torch", workers=0, progress=False))
    assert [v.input_size for v in views] == [(32, 32), (96, 64), (32, 32), (96, 64)]  # 56x40 -> 45x32 -> 32
    classes = np.array([2, 0])
    got = fused_maps(views, net.classifier.weight.detach().numpy(), classes, (56, 40))
    assert got.shape == (2, 40, 56)
    expected = np.zeros((2, 40, 56))
    for (scale, mirrored) in tta.views():
        src = np.ascontiguousarray(img[:, ::-1]) if mirrored else img
        r = next(Pipeline(net, resize=Resize("aspect", scale), backend="torch", topk=0, workers=0,
                          progress=False).run([Job_with(src, classes)]))
        maps = np.stack([upsample(m, (40, 56)) for m in r.extra_maps])
        expected += (maps[..., ::-1] if mirrored else maps) / 4
    np.testing.assert_allclose(got, expected, atol=1e-5)


def Job_with(img: np.ndarray, classes: np.ndarray):
    from camloc.pipeline import Job

    return Job(img, 0, "<image 0>", classes=tuple(int(c) for c in classes))


def test_one_view_tta_is_plain_localize_and_the_record_says_so():
    net = _net(Pointwise(), 2)
    images = [_image(48, 40, s) for s in range(3)]
    plain = [r.record for r in iter_localize(net, images, topk=2, backend="torch", resize=Resize("aspect", 32),
                                             workers=0, progress=False)]
    one = [r.record for r in iter_localize(net, images, topk=2, backend="torch", tta=TTA((32,)), workers=0,
                                           progress=False, calibrated=True)]
    for a, b in zip(plain, one):
        assert b["tta"] == "scales=32"
        assert [p["box"] for p in a["predictions"]] == [p["box"] for p in b["predictions"]]
        assert [p["class_index"] for p in a["predictions"]] == [p["class_index"] for p in b["predictions"]]
        assert all(p["calibrated"] is False for p in a["predictions"])
        assert all(p["calibrated"] is True for p in b["predictions"])
    # the pointwise net is mirror-symmetric: flip changes nothing but the record
    flip = [r.record for r in iter_localize(net, images, topk=2, backend="torch", tta=TTA((32,), True), workers=0,
                                            progress=False, clamp_negative=True)]
    assert flip[0]["tta"] == "flip,scales=32" and flip[0]["predictions"][0]["clamp_negative"] is True


def test_parse_tta():
    assert parse_tta("none") is None
    assert parse_tta("flip") == TTA((256,), True)
    assert parse_tta("flip", default_scale=320) == TTA((320,), True)
    assert parse_tta("scales=256,320") == TTA((256, 320), False)
    assert parse_tta("flip,scales=256,320,448") == TTA((256, 320, 448), True)
    assert parse_tta("scales=320,flip") == TTA((320,), True)
    for bad, words in [("mirror", "unknown item"), ("scales=25x", "must be an integer"), ("flip,320", "unknown item"),
                       ("scales=16", "at least 32"), ("scales=256,256", "repeat")]:
        with pytest.raises(ValueError, match=words):
            parse_tta(bad)


def test_flip_tta_is_mirror_equivariant_on_a_real_photo(lite0, photo_dir):
    """Fused with its mirror, the map of the mirrored photo is the mirrored map of the photo; the
    plain map is not (the net is not mirror-symmetric)."""
    from PIL import Image

    from camloc.tta import fused_logits, map_weight

    img = np.asarray(Image.open(f"{photo_dir}/chelsea.png").convert("RGB"))
    h, w = img.shape[:2]
    kw = dict(backend="torch", workers=0, progress=False)
    a = next(iter_views(lite0, [img], TTA((224,), True), **kw))
    b = next(iter_views(lite0, [np.ascontiguousarray(img[:, ::-1])], TTA((224,), True), **kw))
    assert a[0].input_size == (352, 224)
    np.testing.assert_allclose(fused_logits(a), fused_logits(b), atol=1e-3)
    weight = map_weight(lite0)
    classes = np.argsort(-fused_logits(a))[:2]
    ma, mb = fused_maps(a, weight, classes, (w, h)), fused_maps(b, weight, classes, (w, h))
    scale = float(np.abs(ma).max())
    np.testing.assert_allclose(ma, mb[..., ::-1], atol=1e-4 * scale)
    plain_a, plain_b = fused_maps(a[:1], weight, classes, (w, h)), fused_maps(b[:1], weight, classes, (w, h))
    assert np.abs(plain_a - plain_b[..., ::-1]).max() > 0.05 * scale
