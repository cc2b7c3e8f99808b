"""The paper's nets with the "large feature map" (one pooling layer fewer): twice as fine maps,
CAM still exact, the same parameter names as the regular nets."""

from __future__ import annotations

import pytest
import torch

import camloc
from camloc.extract import extract
from camloc.models.registry import load_model

SIDES = {"alexnet_gap": (13, 27), "vgg16_gap": (14, 28), "googlenet_gap": (14, 28)}


@pytest.mark.parametrize("name", list(SIDES))
def test_large_feature_map_doubles_the_map_and_keeps_cam_exact(name):
    regular = load_model(name, num_classes=7, width=32)
    large = load_model(name, num_classes=7, width=32, large_feature_map=True)
    assert large.arch_kwargs["large_feature_map"] is True and "large_feature_map" not in regular.arch_kwargs
    # the same parameters under the same names: a regular net's weights load into the large one
    assert list(regular.module.state_dict()) == list(large.module.state_dict())
    large.module.load_state_dict(regular.module.state_dict())
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    fc = large.module.fc
    with torch.no_grad():
        fc.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(1))
        fc.bias.copy_(torch.linspace(-1, 1, 7))
        f_small, _ = extract(regular, x)
        features, logits = extract(large, x)
        assert f_small.shape[-2:] == (SIDES[name][0],) * 2
        assert features.shape == (1, 32, SIDES[name][1], SIDES[name][1])
        out = camloc.cam(large, x, topk=3)
        scale = float(logits.abs().max())
        torch.testing.assert_close(out.maps.mean((-2, -1)) + out.bias[out.classes], logits.gather(1, out.classes),
                                   rtol=1e-4, atol=1e-5 * scale)
    assert large.head.exact
