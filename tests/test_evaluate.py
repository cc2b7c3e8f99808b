"""``camloc evaluate`` end to end: a hand-built colour-detector net whose CAMs are the objects
(known answers), GAP vs GMP, CAM vs Grad-CAM, the CLI outputs, and torchrun with 2 processes
giving the single-process numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import camloc
from camloc.cli import main
from camloc.testing import write_wsol_fixture
from camloc.testing.nets import ColourNet, colour_net  # identity colour detectors: each class's map is its objects
from camloc.evaluate import EvalOptions, evaluate
from camloc.scoring import protocol_map
from camloc.models.net import Preprocessing


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_wsol_fixture(tmp_path_factory.mktemp("data"), num_classes=3, per_class=3)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_a_net_whose_maps_are_the_objects_localizes_perfectly(fixture, pooling):
    r = evaluate(colour_net(pooling), fixture.split, EvalOptions(topk=2, progress=False)).metrics
    assert r["num_images"] == 9
    assert r["top1_cls_error"] == 0.0 and r["top2_cls_error"] == 0.0
    # the 20 % box of the true class's map is the (largest) object: IoU >= 0.5 everywhere
    assert r["gt_known_loc_acc"] == 100.0
    assert r["top1_loc_error"] == 0.0 and r["top2_loc_error"] == 0.0
    assert r["MaxBoxAcc"] == 100.0
    assert r["MaxBoxAccV2@30"] == 100.0 and r["MaxBoxAccV2@50"] == 100.0


def test_gradcam_equals_cam_on_a_gap_head_through_the_harness(fixture):
    net = colour_net()
    a = evaluate(net, fixture.split, EvalOptions(progress=False)).metrics
    b = evaluate(net, fixture.split, EvalOptions(method="gradcam", progress=False)).metrics
    keys = ["top1_loc_error", "top5_loc_error", "gt_known_loc_acc", "MaxBoxAcc", "MaxBoxAccV2"]
    assert [a[k] for k in keys] == [b[k] for k in keys]
    c = evaluate(net, fixture.split, EvalOptions(method="backprop", progress=False)).metrics
    assert 0 <= c["MaxBoxAccV2"] <= 100 and c["top1_cls_error"] == 0.0


def test_ten_crop_and_multibox_run_and_stay_perfect_here(fixture):
    r = evaluate(colour_net(), fixture.split, EvalOptions(topk=3, ten_crop=True, multibox=True, progress=False)).metrics
    assert r["top1_cls_error"] == 0.0
    assert r["gt_known_loc_acc"] == 100.0
    assert r["multibox_top5_loc_error"] == 0.0


def test_wrong_labels_and_unreadable_images(fixture, tmp_path):
    net = colour_net()
    split = write_wsol_fixture(tmp_path / "d", num_classes=4, per_class=1).split
    with pytest.raises(ValueError, match="out of range for a model with 3 classes"):
        evaluate(net, split)
    split.samples = split.samples[:3]
    os.remove(split.samples[1].path)
    r = evaluate(net, split, EvalOptions(progress=False))
    assert r.metrics["num_images"] == 2 and len(r.skipped) == 1 and split.samples[1].path in r.skipped[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    net = camloc.load_model(resnet18(num_classes=3).eval(), preprocessing=Preprocessing(shape=(64, 64)))
    net.name = "resnet18"
    net.arch_kwargs = {"num_classes": 3}
    path = tmp_path_factory.mktemp("ckpt") / "r18.pt"
    camloc.save_checkpoint(net, path)
    return path


def test_cli_writes_table_json_csv_and_figures(fixture, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["evaluate", "--model", str(checkpoint), "--data", fixture.root, "--split", "test",
               "--out", str(out), "--batch-size", "4"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| top1_cls_error |" in printed and "| MaxBoxAccV2 |" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_images"] == 9 and m["processes"] == 1
    # evaluate follows the published protocol's geometry, not localize's default, and says so
    assert m["resize"] == "squash" and m["geometry_source"] == "the published protocol (squash)"
    for k in ("top1_cls_error", "top5_cls_error", "top1_loc_error", "top5_loc_error", "gt_known_loc_acc",
              "MaxBoxAcc", "MaxBoxAccV2", "MaxBoxAccV2@70"):
        assert 0.0 <= m[k] <= 100.0
    assert (out / "metrics.csv").exists()
    assert (out / "boxacc_vs_threshold.png").stat().st_size > 1000
    assert (out / "examples.png").stat().st_size > 1000


def test_torchrun_two_processes_equal_one(fixture, checkpoint, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.abspath("src"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    common = ["evaluate", "--model", str(checkpoint), "--data", fixture.root, "--split", "test",
              "--batch-size", "2", "--no-figures"]
    one = subprocess.run([sys.executable, "-m", "camloc.cli", *common, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "camloc.cli", *common, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert b["processes"] == 2 and a["processes"] == 1
    for d in (a, b):
        d.pop("processes")
    assert a == b


def test_mask_dataset_gives_pxap(tmp_path):
    fx = write_wsol_fixture(tmp_path / "m", masks=True, num_classes=3, per_class=2)
    r = evaluate(colour_net(), fx.split, EvalOptions(progress=False)).metrics
    assert r["num_images"] == 6 and r["top1_cls_error"] == 0.0
    assert "MaxBoxAccV2" not in r  # no boxes in a mask dataset
    # the maps are the objects (the masks): nearly perfect pixel precision/recall
    assert r["PxAP"] > 90.0



class FcColourNet(nn.Module):
    """ColourNet's features, pooled to 2x2 cells and classified by one Linear over the 12 cells
    (each class sums its channel's cells / 4: the same scores as GAP) -- a head CAM refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = ColourNet().conv
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(12, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.kron(torch.eye(3), torch.full((1, 4), 0.25)))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def test_gradient_method_on_a_head_where_cam_is_refused(fixture):
    from camloc.models.loading import gradient_net
    from camloc.errors import HeadError

    with pytest.raises(HeadError):
        camloc.load_model(FcColourNet())
    net = gradient_net(FcColourNet(), preprocessing=Preprocessing(shape=(64, 64)))
    # Grad-CAM at the conv output: the gradient of S_c is 1[A_c > 0] / 1024 on channel c only,
    # so the map is ReLU(alpha A_c): the objects again
    r = evaluate(net, fixture.split, EvalOptions(method="gradcam", topk=2, progress=False)).metrics
    assert r["top1_cls_error"] == 0.0 and r["gt_known_loc_acc"] == 100.0 and r["MaxBoxAcc"] == 100.0
    with pytest.raises(ValueError, match="CAM is refused"):
        evaluate(net, fixture.split, EvalOptions(method="cam", progress=False))


def test_positive_reading_through_the_harness(fixture):
    """``norm="positive"``: the same perfect localization here, the reading recorded; the
    protocol's map is the positive part over the max."""
    r = evaluate(colour_net(), fixture.split, EvalOptions(topk=1, progress=False, norm="positive")).metrics
    assert r["norm"] == "positive" and r["gt_known_loc_acc"] == 100.0 and r["MaxBoxAcc"] == 100.0
    raw = np.array([[-2.0, 0.0], [1.0, 4.0]], np.float32)
    pm = protocol_map(raw, size=2, norm="positive")
    assert np.allclose(pm, [[0.0, 0.0], [0.25, 1.0]])
    with pytest.raises(ValueError, match="unknown map normalization"):
        evaluate(colour_net(), fixture.split, EvalOptions(topk=1, progress=False, norm="max"))


def test_geometry_and_backend_options(fixture, capsys):
    """The harness in the aspect geometry and on both backends: the colour maps are the objects
    whatever the resize, ONNX Runtime gives PyTorch's numbers, and metrics say the geometry."""
    from camloc.pixels.geometry import Resize

    net = colour_net()
    on_torch = evaluate(net, fixture.split, EvalOptions(topk=2, backend="torch", progress=False)).metrics
    on_onnx = evaluate(net, fixture.split, EvalOptions(topk=2, backend="onnxruntime", progress=False)).metrics
    assert on_torch == on_onnx and on_torch["resize"] == "squash" and on_torch["MaxBoxAccV2"] == 100.0
    aspect = evaluate(net, fixture.split, EvalOptions(topk=2, resize=Resize("aspect", 64), progress=False)).metrics
    assert aspect["resize"] == "aspect:64" and aspect["num_images"] == 9
    assert aspect["gt_known_loc_acc"] == 100.0 and aspect["MaxBoxAcc"] == 100.0 and aspect["top1_cls_error"] == 0.0
    with pytest.raises(ValueError, match="resize crop maps only the central window"):
        evaluate(net, fixture.split, EvalOptions(resize=Resize("crop", 64), progress=False))
    assert main(["evaluate", "--data", fixture.root, "--resize", "wide"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "camloc evaluate: error: --resize must be aspect[:S], squash or crop[:S], got 'wide'"
