"""Registered backbones beyond the default: EfficientNet-Lite1 and Lite2 with packaged ImageNet weights."""

from __future__ import annotations

import pytest
import torch

import camloc
from camloc.boxes import box_iou
from camloc.models.registry import ModelError

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CHELSEA_CAT = [30, 0, 420, 299]  # the cat in chelsea.png (451x300), drawn by hand
# name -> (input side, feature-map side: stride 32, TensorFlow "same" padding rounds up)
LITES = {"efficientnet_lite0": (224, 7), "efficientnet_lite1": (240, 8), "efficientnet_lite2": (260, 9)}


@pytest.fixture(scope="module", params=sorted(LITES))
def lite(request):
    return camloc.load_model(request.param)


def test_lite_variants_are_registered_with_their_input_sizes():
    models = camloc.available_models()
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(models)
    assert camloc.load_model().name == "efficientnet_lite0"  # Lite0 stays the default


def test_lite_loads_with_imagenet_weights_and_exact_cam(lite):
    side, fside = LITES[lite.name]
    assert lite.preprocessing.size == (side, side)
    assert lite.num_classes == 1000 and lite.class_names[285] == "Egyptian cat"
    assert lite.head.exact and lite.head.classifier.in_features == 1280
    report = camloc.check_exact(lite)
    assert report.scale > 1.0 and report.exact, str(report)
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(3))
    out = camloc.cam(lite, x, topk=2)
    assert out.maps.shape == (1, 2, fside, fside)


def test_lite_classifies_and_localizes_the_cat_photo(lite, photo_dir):
    rec = camloc.localize(lite, [f"{photo_dir}/chelsea.png"], topk=5)[0]
    assert rec["error"] is None and rec["model"] == lite.name
    top = rec["predictions"][0]
    assert top["class_index"] in CAT_CLASSES and top["score"] > 0.5
    assert box_iou(top["box"], CHELSEA_CAT) >= 0.6


def test_lite_weights_that_do_not_fit_are_one_line_errors(tmp_path):
    bad = tmp_path / "lite0.pth"
    torch.save(camloc.load_model("efficientnet_lite0").module.state_dict(), bad)
    with pytest.raises(ModelError, match="cannot load EfficientNet-Lite2 weights") as err:
        camloc.load_model("efficientnet_lite2", weights=bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
