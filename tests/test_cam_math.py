"""The CAM math on hand-built inputs with written-out values, and exactness as a property."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import camloc
from camloc.cam import class_maps, scores_from_maps
from camloc.readings import map_status, normalize_map, upsample


def test_tiny_gap_maps_written_out(tiny_gap):
    net = camloc.load_model(tiny_gap, class_names=["a", "b"])
    x = torch.tensor([[[[1.0, 2.0], [3.0, -4.0]]]])
    out = camloc.cam(net, x, topk=2)
    # relu(x) = [[1, 2], [3, 0]]; M0 = 2 relu(x), M1 = relu(x).
    # S0 = mean(M0) + 0.1 = 3.0 + 0.1, S1 = mean(M1) - 0.2 = 1.5 - 0.2.
    assert out.classes.tolist() == [[0, 1]]
    assert torch.allclose(out.maps[0, 0], torch.tensor([[2.0, 4.0], [6.0, 0.0]]))
    assert torch.allclose(out.maps[0, 1], torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    assert torch.allclose(out.logits, torch.tensor([[3.1, 1.3]]))
    assert torch.allclose(out.bias, torch.tensor([0.1, -0.2]))
    recon = out.maps.mean((-2, -1)) + out.bias[out.classes]
    assert torch.allclose(recon, out.logits.gather(1, out.classes))


def test_map_weight_is_the_classifier_as_an_array(tiny_gap):
    from camloc.cam import map_weight

    net = camloc.load_model(tiny_gap)  # W = [[1, 0.5], [-1, 1]]
    w = map_weight(net)
    assert isinstance(w, np.ndarray) and w.dtype == np.float32 and w.tolist() == [[1.0, 0.5], [-1.0, 1.0]]
    assert map_weight(net, clamp_negative=True).tolist() == [[1.0, 0.5], [0.0, 1.0]]  # the positive part


def test_explicit_classes_and_shared_classes(tiny_gap):
    net = camloc.load_model(tiny_gap)
    x = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 5.0]]]])
    out = camloc.cam(net, x, classes=torch.tensor([1]))
    assert out.maps.shape == (2, 1, 2, 2)
    assert torch.allclose(out.maps[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert torch.allclose(out.maps[1, 0], torch.tensor([[0.0, 0.0], [0.0, 5.0]]))


def test_class_maps_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"weight must be \(C, 3\)"):
        class_maps(torch.zeros(1, 3, 2, 2), torch.zeros(4, 5), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="features must be"):
        class_maps(torch.zeros(3, 2, 2), torch.zeros(4, 3), torch.tensor([[0]]))


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3), k=st.integers(1, 8), c=st.integers(1, 6), h=st.integers(1, 6), w=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_exactness_property(b, k, c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, k, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c, k, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    logits = f.mean((-2, -1)) @ weight.T + bias  # what a GAP + linear head computes
    classes = torch.arange(c).expand(b, c)
    maps = class_maps(f, weight, classes)
    assert maps.shape == (b, c, h, w)
    assert torch.allclose(scores_from_maps(maps, bias, classes), logits, atol=1e-10)


def test_normalize_map_values():
    m = np.array([[-1.0, 0.0], [1.0, 3.0]])
    assert np.allclose(normalize_map(m), [[0.0, 0.25], [0.5, 1.0]])
    assert not normalize_map(np.full((3, 3), 7.0)).any()
    assert not normalize_map(np.array([[0.0, np.nan]])).any()
    assert map_status(np.full((2, 2), 1.0)) == "constant map"
    assert map_status(np.array([[0.0, np.inf]])) == "non-finite map"
    assert map_status(m) is None


def test_upsample_is_bilinear_with_half_pixel_centers():
    m = np.array([[0.0, 1.0]], dtype=np.float32)
    up = upsample(m, (1, 4))
    # Output pixel centers at source x = -0.25, 0.25, 0.75, 1.25 -> clamped linear interpolation.
    assert np.allclose(up, [[0.0, 0.25, 0.75, 1.0]])


def test_default_model_is_exact_on_a_photo(lite0, photo_dir):
    x = lite0.preprocess([f"{photo_dir}/coffee.png"])
    out = camloc.cam(lite0, x, topk=5)
    assert out.maps.shape == (1, 5, 7, 7)
    recon = out.maps.mean((-2, -1)) + out.bias[out.classes]
    assert torch.allclose(recon, out.logits.gather(1, out.classes), atol=1e-4)
    report = camloc.check_exact(lite0, x)
    assert report.exact and report.max_abs_error < 1e-4
