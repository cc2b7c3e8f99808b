"""Registered backbones beyond the default: EfficientNet-Lite1 and Lite2 with packaged ImageNet weights."""

from __future__ import annotations

import pytest
import torch

import camloc
from camloc.boxes import box_iou
from camloc.errors import ModelError

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
    assert camloc.load_model().name == "efficientnet_lite1"  # the default (camloc.defaults.MODEL)


def test_lite_loads_with_imagenet_weights_and_exact_cam(lite):
    side, fside = LITES[lite.name]
    assert lite.preprocessing.shape == (side, side)
    assert lite.num_classes == 1000 and lite.class_names[285] == "Egyptian cat"
    assert lite.head.exact and lite.head.classifier.in_features == 1280
    report = camloc.check_exact(lite)
    assert report.scale > 1.0 and report.exact, str(report)
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(3))
    out = camloc.cam(lite, x, topk=2)
    assert out.maps.shape == (1, 2, fside, fside)


def test_lite_classifies_and_localizes_the_cat_photo(lite, photo_dir):
    path = f"{photo_dir}/chelsea.png"
    out = camloc.cam(lite, lite.preprocess([path]), topk=1)  # the photo squashed to the net's size
    assert int(out.classes[0, 0]) in CAT_CLASSES and float(out.probs.max()) > 0.5
    rec = camloc.localize(lite, [path], topk=5)[0]  # localization's default geometry
    assert rec["error"] is None and rec["model"] == lite.name
    top = rec["predictions"][0]
    assert top["class_index"] in CAT_CLASSES
    assert box_iou(top["box"], CHELSEA_CAT) >= 0.7


@pytest.mark.parametrize("variant", [0, 1])
def test_s16_variant_is_the_stride_32_net_made_dense(variant):
    """The dense net's features on every other row and column (the phase the stride-2 convolution's
    "same" padding sampled) are the stride-32 net's features, exactly; its logits are the GAP of its
    own features, so the score is still the map's mean plus the bias."""
    from camloc.pipeline.backends import make_backend

    plain, dense = camloc.load_model(f"efficientnet_lite{variant}"), camloc.load_model(f"efficientnet_lite{variant}_s16")
    assert dense.name == f"efficientnet_lite{variant}_s16" and dense.preprocessing == plain.preprocessing
    pixels = torch.randint(0, 256, (2, 224, 288, 3), generator=torch.Generator().manual_seed(variant),
                           dtype=torch.uint8).numpy()
    fp, _ = make_backend(plain, "torch")(pixels)
    fd, ld = make_backend(dense, "torch")(pixels)
    assert fp.shape[-2:] == (7, 9) and fd.shape[-2:] == (14, 18)
    conv = [b._depthwise_conv for b in plain.module._blocks if tuple(b._depthwise_conv.stride) != (1, 1)][-1]
    phase = conv.kernel_size[0] // 2 - conv.static_padding.padding[0]  # the input row of output row 0
    torch.testing.assert_close(fd[:, :, phase::2, phase::2], fp, atol=1e-4, rtol=1e-4)
    other = 1 - phase
    assert (fd[:, :, other::2, other::2] - fp).abs().max() > 0.1  # the shifted grid is new information
    w, b = dense.classifier.weight.detach(), dense.classifier.bias.detach()
    torch.testing.assert_close(torch.einsum("ck,bkhw->bc", w, fd) / (14 * 18) + b, ld, atol=1e-4, rtol=1e-4)
    fo, lo = make_backend(dense, "onnxruntime")(pixels)  # the exported graph is the dense one
    torch.testing.assert_close(torch.as_tensor(fo), fd, atol=1e-3, rtol=1e-3)


def test_s16_variant_localizes_the_cat_photo(photo_dir):
    net = camloc.load_model("efficientnet_lite0_s16")
    rec = camloc.localize(net, [f"{photo_dir}/chelsea.png"], topk=1)[0]
    assert rec["error"] is None and rec["model"] == "efficientnet_lite0_s16"
    assert rec["predictions"][0]["class_index"] in CAT_CLASSES
    assert box_iou(rec["predictions"][0]["box"], CHELSEA_CAT) >= 0.7
    from camloc.models.lite import dense_last_stage

    before = str(net.module)
    with pytest.raises(ModelError, match="already dense"):
        dense_last_stage(net.module)
    assert str(net.module) == before  # refused before anything changed


def test_lite_weights_that_do_not_fit_are_one_line_errors(tmp_path):
    bad = tmp_path / "lite0.pth"
    torch.save(camloc.load_model("efficientnet_lite0").module.state_dict(), bad)
    with pytest.raises(ModelError, match="cannot load EfficientNet-Lite2 weights") as err:
        camloc.load_model("efficientnet_lite2", weights=bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


# ---- timm models by name (the optional `timm` extra, part of the test install) ----

timm = pytest.importorskip("timm")

# name -> (create_model kwargs that keep the test small, input side, map side)
TIMM_EXACT = {
    "resnet18": ({}, 64, 2),
    "efficientnet_b0": ({}, 64, 2),
    "convnext_atto": ({}, 64, 2),  # head: pool -> LayerNorm2d -> linear
    "vit_tiny_patch16_224": ({"global_pool": "avg", "img_size": 64}, 64, 4),  # mean of patch tokens -> fc_norm
    "swin_tiny_patch4_window7_224": ({"img_size": 64, "window_size": 2, "depths": (1, 1, 1, 1)}, 64, 2),  # NHWC
    "beit_base_patch16_224": ({"img_size": 64, "depth": 1, "embed_dim": 64, "num_heads": 2}, 64, 4),
}


def _randomize_head(net, seed=0):
    """Non-trivial classifier and head norm, so exactness is a real test."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in (net.head.classifier, net.head.norm):
            if m is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return net


@pytest.mark.parametrize("arch", sorted(TIMM_EXACT))
def test_timm_families_are_exact(arch):
    kwargs, side, fside = TIMM_EXACT[arch]
    net = _randomize_head(camloc.load_model(f"timm:{arch}", num_classes=10, **kwargs))
    assert net.name == f"timm:{arch}" and net.num_classes == 10
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    report = camloc.check_exact(net, x)
    assert report.scale > 0.5 and report.exact, str(report)
    out = camloc.cam(net, x, topk=3)
    assert out.maps.shape == (2, 3, fside, fside)
    torch.testing.assert_close(out.logits, net.module.model(x))  # the wrapper runs the model as timm does
    recon = out.maps.mean((-2, -1)) + out.bias[out.classes]
    torch.testing.assert_close(recon, out.logits.gather(1, out.classes), rtol=1e-4, atol=1e-4)


def test_timm_tokens_are_laid_out_on_the_patch_grid():
    """A ViT without fc_norm: the map features are the patch tokens, token 1 + r w + c at (r, c)
    (token 0 is the class token, left out of the mean); Grad-CAM at the default layer is then
    ReLU(CAM) / hw on the same grid."""
    from camloc.methods import GradCAM

    net = camloc.load_model("timm:vit_tiny_patch16_224", num_classes=5, global_pool="avg", fc_norm=False,
                            img_size=48)
    x = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    out = camloc.cam(net, x, topk=2)
    tokens = net.module.model.forward_features(x)  # (1, 1 + 9, 192)
    for r in range(3):
        for c in range(3):
            torch.testing.assert_close(out.features[0, :, r, c], tokens[0, 1 + 3 * r + c])
    grad = GradCAM()(net, x, out.classes)
    torch.testing.assert_close(grad, out.maps.clamp_min(0) / 9, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "arch, kwargs, reason",
    [
        ("vit_tiny_patch16_224", {"img_size": 32}, "class-token head"),
        ("deit_tiny_distilled_patch16_224", {"img_size": 32}, "two classifier heads"),
        ("mobilenetv3_small_100", {}, "layers between pooling and the classifier"),
        ("resnet18", {"global_pool": "avgmax"}, "not a mean or a max"),
    ],
)
def test_timm_heads_without_exact_cam_are_refused_with_one_line(arch, kwargs, reason):
    from camloc.errors import HeadError

    with pytest.raises(HeadError) as err:
        camloc.load_model(f"timm:{arch}", num_classes=3, **kwargs)
    message = str(err.value)
    assert message.startswith(f"timm:{arch}: ") and reason in message and "\n" not in message


def test_timm_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", num_classes=7).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    expected = source(x)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "r18.pth")
    save_file(source.state_dict(), str(tmp_path / "r18.safetensors"))
    for name in ("r18.pth", "r18.safetensors"):
        net = camloc.load_model("timm:resnet18", weights=tmp_path / name)
        assert net.num_classes == 7  # taken from the file
        torch.testing.assert_close(camloc.cam(net, x).logits, expected)
    camloc.models.checkpoint.save_checkpoint(net, tmp_path / "r18.ckpt")
    again = camloc.load_model(tmp_path / "r18.ckpt")
    assert again.name == "timm:resnet18"
    torch.testing.assert_close(camloc.cam(again, x).logits, expected)
    # a timm module given directly goes through the same head finding
    assert camloc.check_exact(camloc.load_model(source), x).exact


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_timm_weights_refuse_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"state_dict": _RunsCode(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(ModelError, match="cannot read timm weights") as err:
        camloc.load_model("timm:resnet18", weights=tmp_path / "evil.pth")
    assert "\n" not in str(err.value) and not marker.exists()
    with pytest.raises(ModelError, match="never downloaded"):
        camloc.load_model("timm:resnet18", pretrained=True)
    with pytest.raises(ModelError, match="unknown timm model 'resnet_nope'"):
        camloc.load_model("timm:resnet_nope")
