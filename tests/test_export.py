"""ONNX export: the graph's scores, top-k classes and maps equal camloc's, on a hand-built net,
with a probe, and on a real photo with the embedded model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import camloc
from camloc.pipeline import Resize
from camloc.boxes import boxes_from_map
from camloc.readings import upsample
from camloc.cli import main
from camloc.models.loading import gradient_net
from camloc.export import export_onnx, read_metadata
from camloc.models.net import Preprocessing

ort = pytest.importorskip("onnxruntime")


class SmallGap(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


@pytest.fixture
def small():
    return camloc.load_model(SmallGap().eval(), preprocessing=Preprocessing(shape=(16, 12)),
                             class_names=["a", "b", "c"])


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})


def test_graph_equals_camloc_and_carries_its_metadata(small, tmp_path):
    path = tmp_path / "s.onnx"
    report = export_onnx(small, path, topk=2)
    assert report.classes_equal and report.max_map_error < 1e-5
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((5, 3, 16, 12)).astype(np.float32))
    logits, classes, maps = _run(path, x)  # any batch size
    ref = camloc.cam(small, x, topk=2)
    assert maps.shape == (5, 2, 16, 12) and classes.dtype == np.int64
    np.testing.assert_array_equal(classes, ref.classes.numpy())
    np.testing.assert_allclose(maps, ref.maps.numpy(), atol=1e-5)
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=1e-5)
    meta = read_metadata(path)
    assert meta["model"] == small.name and meta["class_names"] == ["a", "b", "c"] and meta["topk"] == 2
    assert meta["preprocessing"]["size"] == [16, 12]
    # the exported maps are exact CAMs: mean(M_c) + b_c is the class score
    bias = np.asarray(meta["bias"], np.float32)
    np.testing.assert_allclose(maps.mean(axis=(2, 3)) + bias[classes], np.take_along_axis(logits, classes, 1), atol=1e-5)


def test_probe_scores_and_maps_are_exported(small, tmp_path):
    torch.manual_seed(3)
    small.probe = nn.Linear(4, 2)
    small.class_names = ["yes", "no"]
    export_onnx(small, tmp_path / "p.onnx", topk=1)
    x = torch.rand(3, 3, 16, 12)
    logits, classes, maps = _run(tmp_path / "p.onnx", x)
    ref = camloc.cam(small, x, topk=1)
    assert logits.shape == (3, 2)
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(maps, ref.maps.numpy(), atol=1e-5)


def test_refusals_are_one_line(small, tmp_path):
    with pytest.raises(ValueError, match=r"topk must be in 1\.\.3, got 4"):
        export_onnx(small, tmp_path / "x.onnx", topk=4)
    refused = gradient_net(SmallGap().eval(), name="fc_head")
    with pytest.raises(ValueError, match="CAM is refused for this head"):
        export_onnx(refused, tmp_path / "y.onnx")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()
    (tmp_path / "z.onnx").write_bytes(b"")
    with pytest.raises(Exception):
        read_metadata(tmp_path / "z.onnx")


def test_cli_export_localizes_the_cat_without_pytorch_in_the_loop(tmp_path, photo_dir, lite0, capsys):
    """The embedded model exported, then run by ONNX Runtime on the cat photo: the same top-1
    class and, with the paper's rule on the upsampled map, the same box as ``camloc localize``."""
    path = tmp_path / "lite0.onnx"
    assert main(["export", "--model", "efficientnet_lite0", "--topk", "3", "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "maps (B, 3, 7, 7)" in printed and "ONNX Runtime gives the same top-k classes as camloc (True)" in printed
    photo = f"{photo_dir}/chelsea.png"
    x = lite0.preprocess([photo])
    logits, classes, maps = _run(path, x)
    rec = camloc.localize(lite0, [photo], topk=1, resize=Resize("squash"), norm="minmax")[0]  # the graph's input
    top = rec["predictions"][0]
    assert int(classes[0, 0]) == top["class_index"] == 285
    assert boxes_from_map(upsample(maps[0, 0], (rec["height"], rec["width"])))[0] == top["box"]


def test_localize_with_the_onnxruntime_backend_gives_the_same_records(lite0, photo_dir, tmp_path, capsys):
    paths = [f"{photo_dir}/{n}" for n in ("chelsea.png", "coffee.png", "rocket.jpg")]
    a = camloc.localize(lite0, paths, topk=3)
    b = camloc.localize(lite0, paths, topk=3, backend="onnxruntime")
    for ra, rb in zip(a, b):
        assert [(p["class_index"], p["box"]) for p in ra["predictions"]] == \
            [(p["class_index"], p["box"]) for p in rb["predictions"]]
        np.testing.assert_allclose([p["logit"] for p in ra["predictions"]], [p["logit"] for p in rb["predictions"]],
                                   atol=1e-3)
    from camloc.methods import get_method

    # a map method on the onnxruntime backend: the same boxes as on PyTorch (its forward read there)
    for ra, rb in zip(camloc.localize(lite0, paths, backend="onnxruntime", method=get_method("gradcam")),
                      camloc.localize(lite0, paths, backend="torch", method=get_method("gradcam"))):
        assert [(p["class_index"], p["box"]) for p in ra["predictions"]] == \
            [(p["class_index"], p["box"]) for p in rb["predictions"]]
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        camloc.localize(lite0, paths, backend="tensorrt")
    out = tmp_path / "o"
    assert main(["localize", paths[0], "--backend", "onnxruntime", "--topk", "1", "--no-figures",
                 "--out", str(out)]) == 0
    assert (out / "results.jsonl").read_text().count('"class_index": 285') == 1
