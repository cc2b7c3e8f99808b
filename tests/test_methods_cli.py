"""--method NAME and --method-option on the command line (one-line errors before torch loads),
methods end to end through localize, NaN maps as a warning, and the targets: a segmentation
model's class region and a detector's box score."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import camloc
from camloc.methods import get_method
from camloc.methods.targets import BoxScoreTarget, ContrastTarget, SegmentationTarget
from camloc.localize import iter_localize
from camloc.pixels.geometry import Resize
from test_startup import run_cli


@pytest.mark.parametrize("argv, message", [
    (["localize", "--method", "xgradcm", "x.jpg"], "camloc localize: error: unknown map method 'xgradcm' (did you mean "
     "'xgradcam'"),
    (["localize", "--method", "smoothgradcampp", "--method-option", "n8", "x.jpg"], "camloc localize: error: "
     "--method-option 'n8': expected KEY=VALUE"),
    (["localize", "--method-option", "n=8", "x.jpg"], "camloc localize: error: --method-option n: cam takes no options"),
    (["evaluate", "--data", "d", "--method", "all"], "camloc evaluate: error: --method all: camloc evaluate runs one "
     "method"),
])
def test_method_option_errors_are_one_line_without_torch(tmp_path, argv, message):
    got, proc = run_cli(tmp_path, *argv)
    assert got == {"rc": 1, "loaded": []}
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1


def test_localize_with_new_methods(lite0, photo_dir):
    path = os.path.join(photo_dir, "chelsea.png")
    rec = camloc.localize(lite0, [path], topk=1, method=get_method("gradcam"))[0]["predictions"][0]
    # XGrad-CAM equals Grad-CAM on a GAP + linear head (closed form): the same box
    for name in ("xgradcam",):
        got = camloc.localize(lite0, [path], topk=1, method=get_method(name))[0]["predictions"][0]
        assert got["box"] == rec["box"] and got["class_index"] == rec["class_index"], name
    # Layer-CAM there is sum_k ReLU(w_k) A_k / (h w): CAM with the negative weights clamped
    from camloc.methods.base import scores_and_activations

    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    _, a = scores_and_activations(lite0, x, None, grad=False)
    w = lite0.head.classifier.weight[rec["class_index"]].clamp_min(0)
    expected = torch.einsum("k,bkhw->bhw", w, a).clamp_min(0) / (a.shape[-2] * a.shape[-1])
    torch.testing.assert_close(get_method("layercam")(lite0, x, torch.tensor([rec["class_index"]]))[:, 0], expected)
    # the cat fills the photo's lower part: Eigen-CAM and the centre baseline give boxes inside the image
    for name, opts in (("eigencam", {}),):
        box = camloc.localize(lite0, [path], topk=1, method=get_method(name, **opts))[0]["predictions"][0]["box"]
        assert box is not None and 0 <= box[0] < box[2] <= 450 and 0 <= box[1] < box[3] <= 299


@pytest.mark.parametrize("name", ["gradcampp", "scorecam"])
def test_a_method_on_the_onnxruntime_backend_gives_the_torch_records(lite0, photo_dir, name, tmp_path, monkeypatch):
    monkeypatch.setenv("CAMLOC_CACHE", str(tmp_path / "cache"))
    paths = [os.path.join(photo_dir, p) for p in ("chelsea.png", "coffee.png")]
    opts = {"max_mb": 64, "layer": "_blocks.5"} if name == "scorecam" else {}  # 80 channels: 80 masked passes per photo
    torch_items = list(iter_localize(lite0, paths, topk=2, method=get_method(name, **opts), backend="torch",
                                            resize=Resize("aspect", 96)))
    ort_items = list(iter_localize(lite0, paths, topk=2, method=get_method(name, **opts), backend="onnxruntime",
                                   resize=Resize("aspect", 96)))
    for a, b in zip(torch_items, ort_items):
        assert [p["class_index"] for p in a.record["predictions"]] == [p["class_index"] for p in b.record["predictions"]]
        for ma, mb in zip(a.maps, b.maps):
            assert np.allclose(ma, mb, rtol=1e-3, atol=1e-4 * float(np.abs(ma).max())), name
    # once the graphs are built (the backend's, cached on disk; Score-CAM's activations and masked
    # passes, kept with the net), PyTorch runs no forward pass: the closed form reads the backend's
    # forward, Score-CAM's passes run in ONNX Runtime
    forwards = {"n": 0}
    hook = lite0.module.register_forward_hook(lambda *a: forwards.__setitem__("n", forwards["n"] + 1))
    try:
        again = list(iter_localize(lite0, paths, topk=2, method=get_method(name, **opts), backend="onnxruntime",
                                   resize=Resize("aspect", 96)))
    finally:
        hook.remove()
    assert forwards["n"] == 0
    assert all(np.array_equal(a.maps, b.maps) for a, b in zip(ort_items, again))


def test_nan_maps_are_a_warning_never_a_nan_box(lite0, photo_dir):
    class NaNMaps(camloc.methods.MapMethod):
        name = "nan"

        def maps(self, net, x, classes):
            m = torch.ones(x.shape[0], classes.shape[1], 7, 7)
            m[:, :, 3, 3] = float("nan")
            return m

    rec = camloc.localize(lite0, [os.path.join(photo_dir, "chelsea.png")], topk=2, method=NaNMaps())[0]
    assert rec["error"] is None
    for p in rec["predictions"]:
        assert p["box"] is None and p["warning"] == "non-finite map: no box"


class PixelSeg(nn.Module):
    """conv (1 -> 2 features) -> 1x1 conv to 3 class logits per pixel; output {"out": (B, 3, H, W)}."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(1, 2, 1)
        self.classifier = nn.Conv2d(2, 3, 1)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.features.bias.copy_(torch.tensor([0.0, 0.5]))
            self.classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]).view(3, 2, 1, 1))
            self.classifier.bias.zero_()

    def forward(self, x):
        return {"out": self.classifier(self.features(x))}


def test_segmentation_target_is_the_class_region():
    x = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    a = torch.cat([x, 0.5 - x], dim=1)[0]  # features
    out = PixelSeg()(x)["out"][0]
    for c in (0, 1):
        region = (out.argmax(0) == c).float()
        # S = sum_region W_c . A: dS/dA_k = W_ck region, Grad-CAM weight W_ck |region| / 4
        w = PixelSeg().classifier.weight[c, :, 0, 0].detach() * region.sum() / 4
        expected = (w[:, None, None] * a).sum(0).clamp_min(0)
        got = get_method("gradcam", layer="features", target=SegmentationTarget())(PixelSeg().eval(), x, torch.tensor([c]))
        torch.testing.assert_close(got[0, 0], expected)
    torch.manual_seed(0)
    from torchvision.models.segmentation import fcn_resnet50

    fcn = fcn_resnet50(weights=None, weights_backbone=None, num_classes=3, aux_loss=False).eval()
    m = get_method("hirescam", layer="backbone.layer4", target=SegmentationTarget())(fcn, torch.randn(1, 3, 64, 64),
                                                                                   torch.tensor([1]))
    assert m.shape == (1, 1, 8, 8) and torch.isfinite(m).all()


def test_box_score_target_on_a_detector():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    det = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=3, min_size=64,
                                                max_size=64, box_score_thresh=0.0).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        found = det(x)[0]
    c = int(found["labels"][found["scores"].argmax()])
    layer = [n for n, mod in det.named_modules() if n.startswith("backbone.body") and isinstance(mod, nn.Conv2d)][-1]
    m = get_method("gradcam", layer=layer, target=BoxScoreTarget())(det, x, torch.tensor([c]))
    assert m.shape[:2] == (1, 1) and torch.isfinite(m).all()
    # a class no box carries: a zero score, a zero map
    missing = next(k for k in range(3) if k not in found["labels"].tolist()) if len(set(found["labels"].tolist())) < 3 else None
    if missing is not None:
        assert get_method("gradcam", layer=layer, target=BoxScoreTarget())(det, x, torch.tensor([missing])).abs().max() == 0
    t = BoxScoreTarget()
    assert float(t([found], torch.tensor([c]))) == pytest.approx(float(found["scores"].max()))


def test_contrast_target_picks_the_closest_scores():
    logits = torch.tensor([[5.0, 4.9, 1.0, 4.0, -3.0]], requires_grad=True)
    t = ContrastTarget(alpha=0.5, references=2)
    assert t.reference_classes(logits.detach(), torch.tensor([0])).tolist() == [[1, 3]]
    assert float(t(logits, torch.tensor([0])).detach()) == pytest.approx(5.0 - 0.5 * (4.9 + 4.0) / 2)


def test_evaluate_takes_registry_methods_and_their_options(tmp_path):
    from camloc.evaluate import EvalOptions, evaluate
    from camloc.testing import write_wsol_fixture
    from test_evaluate import colour_net

    split = write_wsol_fixture(tmp_path / "d", num_classes=3, per_class=2).split
    net = colour_net()
    keys = ["top1_loc_error", "gt_known_loc_acc", "MaxBoxAcc", "MaxBoxAccV2"]
    cam = evaluate(net, split, EvalOptions(progress=False, examples=0)).metrics
    # the colour net's maps are its objects: XGrad-CAM (closed form) and Layer-CAM at the conv
    # layer (an option) localize as CAM does
    for method, options in (("xgradcam", {}), ("layercam", {"layer": "conv"})):
        got = evaluate(net, split, EvalOptions(method=method, method_options=options, progress=False, examples=0)).metrics
        assert [got[k] for k in keys] == [cam[k] for k in keys], method
    with pytest.raises(camloc.errors.MethodError, match="unknown option 'nn'"):
        evaluate(net, split, EvalOptions(method="smoothgradcampp", method_options={"nn": 2}, progress=False))


def test_the_run_header_names_the_backend_that_ran_the_method(photo_dir, tmp_path, monkeypatch):
    import json

    from camloc.cli import main

    monkeypatch.setenv("CAMLOC_CACHE", str(tmp_path / "cache"))
    for backend in ("auto", "torch"):
        out = tmp_path / backend
        assert main(["localize", "--model", "efficientnet_lite0", "--method", "gradcampp", "--backend", backend,
                     "--resize", "aspect:96", "--no-figures", os.path.join(photo_dir, "chelsea.png"), "--out", str(out)]) == 0
        header = json.loads((out / "results.jsonl").read_text().splitlines()[0])["camloc_run"]
        assert header["method"] == "gradcampp"
        assert header["backend"] == ("onnxruntime" if backend == "auto" else "torch")
