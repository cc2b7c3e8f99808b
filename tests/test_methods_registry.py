"""The registry: every class under its name, the torch-free name list equal to it, options
passed through and unknown names/options as one-line errors."""

from __future__ import annotations

import pytest

from camloc.errors import MethodError
from camloc.method_names import NAMES, check_method_name, parse_method_options
from camloc.methods import METHODS, get_method, method_options


def test_names_match_the_registry():
    assert set(NAMES) == set(METHODS)
    assert len(NAMES) == len(set(NAMES))
    for name, cls in METHODS.items():
        assert cls.name == name


def test_every_method_builds_with_its_defaults():
    for name in METHODS:
        assert get_method(name).name == name


def test_unknown_name_lists_close_names():
    with pytest.raises(MethodError, match=r"unknown map method 'gradcm' \(did you mean 'gradcam'"):
        get_method("gradcm")
    with pytest.raises(MethodError, match="did you mean 'gradcampp'"):
        check_method_name("gradcamp")
    assert check_method_name("all") == "all"


def test_unknown_option_is_one_line():
    with pytest.raises(MethodError, match=r"method 'gradcam': unknown option 'layr' \(did you mean 'layer'\?\)"):
        get_method("gradcam", layr="x")
    with pytest.raises(MethodError, match="takes no target layer"):
        get_method("cam", layer="conv")
    assert get_method("cam", layer=None).name == "cam"
    assert "layer" in method_options(METHODS["gradcam"])


def test_method_option_parsing():
    assert parse_method_options(["n=8", "sigma=0.25", "layers=a,b", "relu=false", "x=abc"]) == \
        {"n": 8, "sigma": 0.25, "layers": ["a", "b"], "relu": False, "x": "abc"}
    with pytest.raises(MethodError, match="expected KEY=VALUE"):
        parse_method_options(["n8"])


def test_unknown_target_layer_lists_the_closest_names():
    import torch
    from torchvision.models import resnet18

    net = resnet18(num_classes=3).eval()
    with pytest.raises(MethodError, match=r"ResNet: no layer named 'layer5' \(did you mean 'layer4', 'layer3', 'layer2'\?\)"):
        get_method("xgradcam", layer="layer5")(net, torch.zeros(1, 3, 32, 32), torch.tensor([0]))
    with pytest.raises(MethodError, match="target layer must be a module or its dotted name, got int"):
        get_method("hirescam", layer=4)(net, torch.zeros(1, 3, 32, 32), torch.tensor([0]))


def test_classes_for_another_number_of_images_is_a_method_error():
    import torch

    from camloc.testing.nets import colour_net

    with pytest.raises(MethodError, match=r"gradcam: classes for 3 images, got 2 images"):
        get_method("gradcam")(colour_net(), torch.zeros(2, 3, 16, 16), torch.zeros(3, 1, dtype=torch.long))
