"""Gradient methods on class-token transformers: the patch-token grid found automatically
(camloc.models.token_grid), checked against Grad-CAM computed by hand on the reshaped tokens."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camloc.methods import get_method
from camloc.errors import HeadError
from camloc.models.heads import find_head

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")


def hand_gradcam(model: nn.Module, norm: nn.Module, prefix: int, grid: tuple[int, int], x, cls: int):
    """Grad-CAM written out: tokens at ``norm``'s output, d S_c / d tokens, patch part reshaped."""
    store = {}
    handle = norm.register_forward_hook(lambda _m, _a, out: store.update(t=out))
    with torch.enable_grad():
        s = model(x)[:, cls].sum()
        (g,) = torch.autograd.grad(s, store["t"])
    handle.remove()
    h, w = grid
    a = store["t"][:, prefix:].transpose(1, 2).reshape(x.shape[0], -1, h, w)
    g = g[:, prefix:].transpose(1, 2).reshape(x.shape[0], -1, h, w)
    return (g.mean(dim=(2, 3))[:, :, None, None] * a).sum(1).clamp_min(0).detach()


@pytest.mark.parametrize("extra", [{}, {"reg_tokens": 2}])
def test_timm_class_token_vit_gradcam_on_patch_grid(extra):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                              num_classes=5, **extra).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = get_method("gradcam")(model, x, torch.tensor([1, 3]))
    assert maps.shape == (2, 2, 4, 4)
    prefix = model.num_prefix_tokens
    assert prefix == 1 + extra.get("reg_tokens", 0)
    for j, c in enumerate([1, 3]):
        want = hand_gradcam(model, model.blocks[-1].norm1, prefix, (4, 4), x, c)
        assert want.abs().max() > 0  # the class token reads these tokens: a nonzero gradient
        torch.testing.assert_close(maps[:, j], want, rtol=1e-5, atol=1e-7)


def test_torchvision_vit_gradcam_on_patch_grid_and_cam_refused_in_one_line():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                                 hidden_dim=16, mlp_dim=16, num_classes=4).eval()
    nn.init.normal_(model.heads.head.weight)  # torchvision starts it at zero: no gradient at all
    x = torch.randn(3, 3, 32, 32)
    maps = get_method("gradcam")(model, x, torch.tensor([2]))
    assert maps.shape == (3, 1, 4, 4)
    want = hand_gradcam(model, model.encoder.layers[-1].ln_1, 1, (4, 4), x, 2)
    assert want.abs().max() > 0
    torch.testing.assert_close(maps[:, 0], want, rtol=1e-5, atol=1e-7)
    assert get_method("gradcampp")(model, x, torch.tensor([2])).shape == (3, 1, 4, 4)
    with pytest.raises(HeadError) as err:
        find_head(model)
    assert "class-token head" in str(err.value) and "\n" not in str(err.value)


def test_timm_by_name_for_a_gradient_method_from_a_weights_file(tmp_path):
    """What ``camloc localize --model timm:vit_tiny_patch16_224 --weights W --method gradcam`` loads."""
    from safetensors.torch import save_file

    from camloc.commands._common import load_net

    torch.manual_seed(0)
    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7)
    path = tmp_path / "w.safetensors"
    save_file(src.state_dict(), str(path))
    with pytest.raises(HeadError) as err:  # CAM: refused, in one line
        load_net("timm:vit_tiny_patch16_224", str(path), "cpu", "cam")
    assert "class-token head" in str(err.value) and "\n" not in str(err.value)
    net = load_net("timm:vit_tiny_patch16_224", str(path), "cpu", "gradcam")
    assert net.preprocessing.shape == (224, 224)
    x = torch.randn(1, 3, 224, 224)
    maps = get_method("gradcam")(net, x, torch.tensor([4]))
    assert maps.shape == (1, 1, 14, 14)
    src.eval()
    torch.testing.assert_close(net.module(x), src(x))  # the weights from the file
    want = hand_gradcam(net.module.model, net.module.model.blocks[-1].norm1, 1, (14, 14), x, 4)
    torch.testing.assert_close(maps[:, 0], want, rtol=1e-5, atol=1e-7)
