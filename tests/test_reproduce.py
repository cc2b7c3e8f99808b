"""The CPU reproduction: its pieces on hand-built inputs, and the ``--quick`` run end to end."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from camloc.experiments.reproduce.plan import Plan
from camloc.experiments.reproduce.scores import centered_baseline, orderings, score_maps, summarize
from camloc.experiments.reproduce.train import Images, lr_factor, trained_net

FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def test_lr_factor_warms_up_then_follows_a_cosine():
    total, warm = 100, 0.1
    assert lr_factor(0, total, warm) == pytest.approx(0.1)
    assert lr_factor(5, total, warm) == pytest.approx(0.55)
    assert lr_factor(10, total, warm) == pytest.approx(1.0)
    assert lr_factor(55, total, warm) == pytest.approx(0.5)
    assert lr_factor(100, total, warm) == pytest.approx(0.0, abs=1e-12)


def test_summarize_uses_the_sample_std():
    s = summarize([1.0, 2.0, 6.0])
    assert s["mean"] == pytest.approx(3.0) and s["std"] == pytest.approx(np.sqrt(7.0)) and s["n"] == 3
    assert summarize([4.0]) == {"mean": 4.0, "std": 0.0, "n": 1}


def test_centered_baseline_on_hand_built_boxes():
    # Three images whose box is the centered 32x32 square of a 64 canvas, one in a corner.
    boxes = np.array([[16, 16, 47, 47]] * 3 + [[0, 0, 9, 9]])
    b = centered_baseline(boxes, 64)
    assert b["box"] == [16, 16, 47, 47]
    assert b["gt_known_loc_acc"] == pytest.approx(75.0)
    assert b["MaxBoxAccV2"] == pytest.approx(75.0)


def _images(n: int = 4, size: int = 32) -> Images:
    boxes = np.array([[4 + i, 6, 15 + i, 20] for i in range(n)])
    return Images(np.zeros((n, size, size), np.uint8), np.arange(n) % 10, boxes)


def test_score_maps_of_perfect_and_empty_maps():
    images = _images()
    maps = np.zeros((4, 32, 32), np.float32)
    for m, (x0, y0, x1, y1) in zip(maps, images.boxes):
        m[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    maps[3] = 0.0  # a constant map finds no box
    top1 = images.labels.copy()
    top1[1] = 9  # wrong class for image 1: a top-1 miss although its box is right
    r = score_maps(maps, top1, images, Plan(threshold_step=0.1))
    assert r["gt_known_loc_acc"] == pytest.approx(75.0)
    assert r["top1_loc_error"] == pytest.approx(50.0)
    assert r["MaxBoxAcc"] == pytest.approx(75.0)
    assert len(r["curve"]) == 10 and max(r["curve"]) == pytest.approx(75.0)


def test_orderings_count_the_seeds_that_agree():
    def run(gap: float, gmp: float, bp: float) -> dict:
        m = {"MaxBoxAcc": 0.0, "gt_known_loc_acc": 0.0, "top1_loc_error": 50.0, "MaxBoxAccV2": 0.0}
        return {"classification": {"gap": 20.0, "gmp": 21.0, "fc": 19.0},
                "methods": {"cam_gap": {**m, "MaxBoxAcc": gap}, "cam_gmp": {**m, "MaxBoxAcc": gmp},
                            "cam_gap_relu": {**m, "MaxBoxAcc": gap + 1}, "cam_gmp_relu": {**m, "MaxBoxAcc": gmp + 5},
                            "backprop_gap": {**m, "MaxBoxAcc": bp}, "backprop_fc": {**m, "MaxBoxAcc": bp}}}

    o = orderings([run(80, 70, 60), run(75, 78, 60), run(90, 70, 95)])
    assert o["gap_vs_gmp_loc_MaxBoxAcc"]["holds"] == 2 and o["gap_vs_gmp_loc_MaxBoxAcc"]["diffs"] == [10, -3, 20]
    assert o["gap_vs_gmp_relu_loc_MaxBoxAcc"]["diffs"] == [6, -7, 16]
    assert o["cam_relu_vs_backprop_fc_MaxBoxAcc"]["holds"] == 2
    assert o["cam_vs_backprop_gap_MaxBoxAcc"]["holds"] == 2
    assert o["cam_vs_backprop_gap_MaxBoxAcc"]["mean_diff"] == pytest.approx((20 + 15 - 5) / 3)
    assert o["gap_vs_gmp_classification"]["mean_diff"] == pytest.approx(1.0)
    assert o["gap_vs_fc_classification"]["gap_better"] == 0


def test_trained_net_is_reused_only_for_the_same_plan(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = Images(rng.integers(0, 255, (64, 64, 64), dtype=np.uint8), np.arange(64) % 10,
                    np.tile([[0, 0, 10, 10]], (64, 1)))
    plan = Plan(train=64, val=0, epochs=1, batch_size=32, widths=(4, 8, 8), head_channels=8)
    val = Images(images.gray[:0], images.labels[:0], images.boxes[:0])
    path = tmp_path / "gap_seed0.pt"
    net, rows, reused = trained_net("gap", path, images, val, plan, 0, lambda s: None, False)
    assert not reused and len(rows) == 1 and path.is_file()
    # no validation images: the error is null (JSON), not NaN, with a one-line warning
    assert rows[0]["val_top1_error"] is None
    assert capsys.readouterr().err == ("camloc: warning: fashion_gap seed 0: the validation error without "
                                       "validation images is undefined; written as null\n")
    again, _, reused = trained_net("gap", path, images, val, plan, 0, lambda s: None, False)
    assert reused
    x = images.batch(slice(0, 4), net)
    with torch.no_grad():
        torch.testing.assert_close(again.module(x), net.module(x))
    _, _, reused = trained_net("gap", path, images, val, dataclasses.replace(plan, lr=0.05), 0, lambda s: None, False)
    assert not reused


@pytest.fixture(scope="module")
def small_test_split(tmp_path_factory):
    from camloc.experiments.fashion_loc import write_benchmark

    if not os.path.isfile(FMNIST):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    folder = tmp_path_factory.mktemp("fashion") / "d"
    write_benchmark(folder, "cluttered", {"test": 40}, seed=1, progress=False)
    return folder / "test"


@pytest.mark.parametrize("key", ["cam_gap", "backprop_gap", "gradcam_gap"])
def test_scores_are_those_of_camloc_evaluate(small_test_split, key):
    """The reproduction scores maps exactly as ``camloc evaluate`` scores the same data and net."""
    from camloc.data.wsol import read_wsol
    from camloc.evaluate import EvalOptions, evaluate
    from camloc.models.registry import load_model
    from camloc.experiments.reproduce.plan import FULL, METHODS
    from camloc.experiments.reproduce.scores import method_maps
    from camloc.experiments.reproduce.train import predict, read_images

    images = read_images(small_test_split)
    torch.manual_seed(0)
    net = load_model("fashion_gap", widths=(4, 8, 8), head_channels=8)
    method = next(m for m in METHODS if m.key == key)
    ours = score_maps(method_maps(method, net, images), predict(net, images).numpy(), images, FULL)
    theirs = evaluate(net, read_wsol(small_test_split), EvalOptions(method=method.kind, topk=1, progress=False)).metrics
    for metric in ("top1_loc_error", "gt_known_loc_acc", "MaxBoxAcc", "MaxBoxAccV2"):
        # equal up to one image (100 / 40 points): batches of another size may round differently
        assert abs(ours[metric] - theirs[metric]) <= 2.5 + 1e-9, (metric, ours[metric], theirs[metric])


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(FMNIST), reason="Debian's dataset-fashion-mnist is not installed")
def test_quick_reproduce_localizes_far_above_the_centered_box(tmp_path):
    """``camloc reproduce --quick`` end to end (about a minute on 2 cores): the GAP net trained from
    labels only localizes its items far better than the best centered box of the same test set."""
    from camloc.cli import main

    out = tmp_path / "q"
    assert main(["reproduce", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["regimes"]) == ["cluttered"]
    r = results["regimes"]["cluttered"]
    base = r["baseline"]
    run = r["seeds"]["0"]
    assert 5 < base["gt_known_loc_acc"] < 30  # small items at random places: a centered box rarely fits
    assert run["classification"]["gap"] < 75  # chance is 90 %
    gap = run["methods"]["cam_gap_relu"]  # the paper's rule: 20 % of the max of the CAM
    assert gap["gt_known_loc_acc"] >= 3 * base["gt_known_loc_acc"], (gap["gt_known_loc_acc"], base)
    assert gap["MaxBoxAcc"] >= 3 * base["MaxBoxAcc"], (gap["MaxBoxAcc"], base)
    assert run["methods"]["cam_gap"]["MaxBoxAcc"] >= 2 * base["MaxBoxAcc"]
    # Grad-CAM at the GAP net's CAM layer is ReLU(CAM) / hw: the same boxes.
    assert run["methods"]["gradcam_gap"]["MaxBoxAcc"] == pytest.approx(gap["MaxBoxAcc"], abs=1.0)
    report = (out / "report.md").read_text()
    assert "### Table 1 analogue" in report and "| CAM, GAP net (positive part, of the max) |" in report
    for name in ("reproduce_examples_cluttered.png", "reproduce_threshold_curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "runs" / "cluttered" / "gap_seed0.pt").is_file()
    # The report and figures can be written again from results.json and the saved nets alone.
    (out / "report.md").unlink()
    assert main(["reproduce", "--report-only", "--out", str(out)]) == 0
    assert (out / "report.md").read_text() == report
