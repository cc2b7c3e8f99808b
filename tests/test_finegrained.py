"""The fine-grained settings on a CUB-200-2011 fixture, end to end, with a known answer.

Every fixture image is redrawn on a wider canvas: the labelled bird (a rectangle of its class
color, at the annotated box) plus a distractor of the same size in another class's color to the
right. On the full image both colors weigh the same, so probe (a) must guess between two
classes; on the ground-truth crop only the labelled color is left, so probe (c) is always
right; the CAM box of (a)'s predicted class covers the rectangle of that class, so it hits the
annotated box exactly when the prediction is right.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from probe_nets import ColorNet  # noqa: F401  (registers the test backbones)

import camloc
from camloc.boxes import box_iou
from camloc.cli import main
from camloc.data.cub import read_cub
from camloc.testing import PALETTE, write_cub_fixture
from camloc.finegrained import PAPER, finegrained, localization_hits, union_box
from camloc.probe import ProbeError


def write_distracted_cub(root, per_class: int = 14, seed: int = 0):
    fx = write_cub_fixture(root, num_classes=3, per_class=per_class)
    rng = np.random.default_rng(seed)
    for s in fx.extra["splits"]["all"].samples:
        x0, y0, x1, y1 = s.boxes[0]
        w, h = 96, 48
        arr = rng.integers(10, 51, size=(h, w, 3), dtype=np.uint8)
        arr[y0 : y1 + 1, x0 : x1 + 1] = PALETTE[s.label]
        other = (s.label + int(rng.integers(1, 3))) % 3
        bw, bh = x1 - x0 + 1, y1 - y0 + 1
        dx = int(rng.integers(50, w - bw + 1))
        dy = int(rng.integers(0, h - bh + 1))
        arr[dy : dy + bh, dx : dx + bw] = PALETTE[other]
        Image.fromarray(arr).save(s.path, format="JPEG", quality=95)
    return fx


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    return write_distracted_cub(tmp_path_factory.mktemp("cub"))


def test_helpers():
    assert union_box([[1, 2, 3, 4], [0, 5, 2, 9]]) == [0, 2, 3, 9]
    assert union_box([]) is None
    hits = localization_hits([[0, 0, 9, 9], None, [0, 0, 9, 9]], [[[0, 0, 9, 14]], [[0, 0, 1, 1]], [[20, 20, 29, 29]]])
    assert hits.tolist() == [True, False, False]  # IoU 100/150, no box, disjoint


def test_finegrained_known_answer(cub, tmp_path):
    train, test = read_cub(cub.root, "train"), read_cub(cub.root, "test")
    assert len(train) == 21 and len(test) == 21
    net = camloc.load_model("test_colornet")
    res = finegrained(net, train, test, cache_dir=tmp_path, progress=False)
    assert res.n_train == 21 and res.n_test == 21 and res.skipped == []
    assert res.gt_crop == 1.0
    assert res.full < 0.9  # two equal colors: (a) must guess
    labels = np.array([s.label for s in test.samples])
    pred = np.array(res.test_predictions)
    assert res.full == pytest.approx(np.mean(pred == labels))
    # the CAM box of the predicted class lies on that class's rectangle, so it can hit the
    # annotated box only when the prediction is right; when the distractor's (negative) map
    # dominates the min-max range, the box is the whole image
    hits = localization_hits(res.test_boxes, [s.boxes for s in test.samples])
    assert not (hits & (pred != labels)).any() and hits.sum() >= 3
    assert res.localization == pytest.approx(np.mean(hits)) == res.top1_localization
    whole = [0, 0, 95, 47]
    for box, s, p in zip(res.test_boxes, test.samples, pred):
        if p == s.label:
            assert box == whole or box_iou(box, s.boxes[0]) >= 0.6, (box, s.boxes)
        else:
            assert box == whole or box_iou(box, s.boxes[0]) == 0.0, (box, s.boxes)
    # the CAM crop holds one color: the crop probe is right where (a) was (and may fix some)
    assert res.cam_crop >= res.full - 1 / 21
    assert set(res.C) == {"full", "cam_crop", "gt_crop"}
    assert res.test_ids == [s.image_id for s in test.samples]
    # the crops' features were cached: a second run computes nothing new
    n = len(os.listdir(tmp_path))
    again = finegrained(net, train, test, cache_dir=tmp_path, progress=False)
    assert len(os.listdir(tmp_path)) == n and again.to_dict() == res.to_dict()


def test_table_lists_the_papers_figures(cub):
    net = camloc.load_model("test_colornet")
    res = finegrained(net, read_cub(cub.root, "train"), read_cub(cub.root, "test"), progress=False)
    table = res.table()
    assert "| classification, ground-truth box crop | 100.0 % | 70.5 % |" in table
    assert PAPER == {"full": 0.630, "cam_crop": 0.678, "gt_crop": 0.705, "localization": 0.410}


def test_mismatched_classes_are_refused(cub):
    train, test = read_cub(cub.root, "train"), read_cub(cub.root, "test")
    test.classes = test.classes[:2] + ["999.Other"]
    with pytest.raises(ProbeError) as err:
        finegrained(camloc.load_model("test_colornet"), train, test, progress=False)
    assert str(err.value) == (f"training and test data have different classes (3 vs 3): train has "
                              f"'{train.classes[2]}', test does not")
    test.classes = list(train.classes) + ["999.Other", "998.Other"]
    with pytest.raises(ProbeError, match=r"^training and test data have different classes \(3 vs 5\): test has "
                       r"'999.Other' \(and 1 more\), train does not$"):
        finegrained(camloc.load_model("test_colornet"), train, test, progress=False)
    test.classes = list(reversed(train.classes))
    with pytest.raises(ProbeError, match=r"^training and test data list the same 3 classes in another order$"):
        finegrained(camloc.load_model("test_colornet"), train, test, progress=False)


def test_boxes_on_some_images_only_are_refused(cub):
    train, test = read_cub(cub.root, "train"), read_cub(cub.root, "test")
    train.samples[4].boxes = []
    with pytest.raises(ProbeError) as err:
        finegrained(camloc.load_model("test_colornet"), train, test, progress=False)
    assert str(err.value) == (f"train: 1 of 21 images have no box (first: {train.samples[4].image_id}); the "
                              "ground-truth crop needs a box on every image or on none")
    train = read_cub(cub.root, "train")
    for s in test.samples:
        s.boxes = []
    with pytest.raises(ProbeError, match=r"^test images have no boxes but the training images have: the "
                       r"ground-truth crop needs both$"):
        finegrained(camloc.load_model("test_colornet"), train, test, progress=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``train/<color>/`` and ``test/<color>/`` folders: a layout without boxes."""
    from probe_nets import color_split

    root = str(tmp_path_factory.mktemp("folders"))
    color_split(root, 6, seed=0, name="train")
    color_split(root, 4, seed=1, name="test")
    return root


def test_folder_layout_without_boxes(folders, tmp_path, monkeypatch):
    """Full image and CAM crop only; a second seed that picks the same probe reuses its CAM boxes."""
    import camloc.finegrained as fg
    from camloc.data import open_dataset

    calls = []
    real = fg.cam_boxes
    monkeypatch.setattr(fg, "cam_boxes", lambda *a, **k: calls.append(1) or real(*a, **k))
    train, test = open_dataset(folders, "train"), open_dataset(folders, "test")
    net = camloc.load_model("test_colornet")
    memo: dict = {}
    res = finegrained(net, train, test, cache_dir=tmp_path, progress=False, memo=memo)
    assert (res.n_train, res.n_test) == (18, 12)
    assert res.full == 1.0 and res.cam_crop == 1.0  # one colored square per image
    assert res.gt_crop is None and res.localization is None and res.top1_localization is None
    assert set(res.C) == {"full", "cam_crop"} and len(calls) == 2
    assert "| classification, ground-truth box crop | n/a (no boxes) | 70.5 % |" in res.table()
    # every C reaches 100 % on the validation part: the smallest wins whatever the seed, the
    # refit starts from zeros, so seed 1 gives the same probe and reads its boxes from the memo
    again = finegrained(net, train, test, cache_dir=tmp_path, progress=False, memo=memo, seed=1)
    assert len(calls) == 2 and again.test_boxes == res.test_boxes and again.full == res.full


def test_cli_on_class_folders_with_seeds(folders, tmp_path, capsys):
    out = tmp_path / "fg.json"
    rc = main(["finegrained", "--data", folders, "--backbone", "test_colornet", "--cache", str(tmp_path / "c"),
               "--seed", "0,1", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "test_colornet features, svm; 18 training and 12 test images, 3 classes; seed 1; C chosen" in text
    assert "| classification, CAM box crop | 100.0 % | 67.8 % |" in text
    assert "top-1 localization" not in text
    assert "over seeds 0, 1:\n| setting | mean over 2 seeds | std | min - max |" in text
    assert "| classification, full image | 100.00 % | 0.00 | 100.00 - 100.00 % |" in text
    assert "ground-truth box crop | 100" not in text
    saved = json.loads(out.read_text())
    assert saved["seeds"] == [0, 1] and len(saved["runs"]) == 2
    assert saved["mean"]["full"] == 1.0 and saved["mean"]["gt_crop"] is None and saved["std"]["cam_crop"] == 0.0
    with pytest.raises(SystemExit) as exit_:
        main(["finegrained", "--data", folders, "--seed", "0,0"])
    assert exit_.value.code == 2
    assert "expected distinct integers, got '0,0'" in capsys.readouterr().err


def test_cli(cub, tmp_path, capsys):
    out = tmp_path / "fg.json"
    rc = main(["finegrained", "--data", os.path.dirname(cub.root), "--backbone", "test_colornet",
               "--no-cache", "--norm", "positive", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "test_colornet features, svm; 21 training and 21 test images, 3 classes" in text
    assert "| setting | measured | paper (GoogLeNet-GAP, CUB-200-2011) |" in text
    saved = json.loads(out.read_text())
    assert saved["gt_crop"] == 1.0 and saved["backbone"] == "test_colornet" and saved["threshold"] == 0.2
    assert saved["norm"] == "positive"
    # (the parent folder of CUB_200_2011 was given); a folder without CUB files is one line
    assert main(["finegrained", "--data", str(tmp_path), "--backbone", "test_colornet", "--no-cache"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"camloc finegrained: error: {tmp_path}: no dataset found for split "
                                               "'train': looked for"), err


def test_accuracy_over_no_images_is_null_with_a_warning(capsys):
    """It was NaN, which the JSON writers refuse (the run ended at its results file)."""
    import json

    import numpy as np

    from camloc.finegrained import _accuracy

    assert _accuracy(np.array([1, 2, 2]), np.array([1, 2, 0])) == 2 / 3
    assert _accuracy(np.zeros(0, np.int64), np.zeros(0, np.int64), "localization accuracy") is None
    assert capsys.readouterr().err == "camloc: warning: localization accuracy over no test images is undefined; written as null\n"
    assert json.dumps({"localization": None}, allow_nan=False) == '{"localization": null}'
