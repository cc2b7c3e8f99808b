"""Classification error, the paper's localization errors and PxAP on hand-worked inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camloc.metrics.classification import ClassificationEvaluator
from camloc.boxes import heuristic_boxes, hit
from camloc.metrics.ilsvrc import IlsvrcLocEvaluator, heuristic_predictions
from camloc.metrics.pxap import PxAPEvaluator, ground_truth


def test_classification_top1_top5_by_hand():
    logits = torch.tensor([
        [9.0, 1, 2, 3, 4, 5, 6],   # label 0: rank 1
        [1.0, 9, 8, 7, 6, 5, 4],   # label 5: rank 5 (9 8 7 6 5 -> index 5 is 5th)
        [1.0, 2, 3, 4, 5, 6, 7],   # label 0: rank 7
        [0.0, 0.5, 3, 2, 1, 9, 8], # label 6: rank 2
    ])
    ev = ClassificationEvaluator()
    ev.accumulate(logits[:2], [0, 5])
    ev.accumulate(logits[2:], torch.tensor([0, 6]))
    r = ev.compute()
    assert r["top1_cls_error"] == 75.0  # 1 of 4 right
    assert r["top5_cls_error"] == 25.0  # 3 of 4 within 5
    assert r["num_images"] == 4


def test_loc_errors_and_gt_known_by_hand():
    gt = [[10, 10, 19, 19]]  # 100 pixels
    good = [10, 10, 19, 20]  # 110 px, inter 100 -> IoU 100/110 = .909
    half = [10, 10, 19, 29]  # 200 px, inter 100 -> IoU .5 (counts: >= 0.5)
    bad = [10, 10, 19, 30]   # 210 px -> .476
    ev = IlsvrcLocEvaluator()
    ev.accumulate(
        predictions=[
            [(1, good), (2, None)],            # right at 1
            [(2, None), (1, half)],            # right at 2 (top-5 only)
            [(1, bad), (3, None)],             # right class, IoU too low
            [(4, good), (5, good), (1, bad)],  # good boxes of the wrong classes
        ],
        labels=[1, 1, 1, 1],
        gt_boxes=[gt, gt, gt, gt],
        true_boxes=[good, half, bad, None],
    )
    r = ev.compute()
    assert r["top1_loc_error"] == 75.0
    assert r["top5_loc_error"] == 50.0
    assert r["gt_known_loc_acc"] == 50.0
    assert hit(half, gt) and not hit(bad, gt) and not hit(None, gt)


def test_heuristic_boxes_on_a_written_map():
    # A 60x60 map: a big 40x40 plateau at 0.5 holding a 12x12 peak of 1.0.
    m = np.zeros((60, 60))
    m[10:50, 5:45] = 0.5
    m[20:32, 15:27] = 1.0
    boxes = heuristic_boxes(m)
    # Every level (gray 127 and 255 both > 20, 100, 110) keeps the plateau: the erosion drops
    # pixels within 10/255 of the largest distance to the background (20 px -> 0.78 px), and edge
    # pixels are 1 px away, so nothing goes. Three equal boxes (5, 10, 40, 40): the first drops the
    # second, and -- the released tool's loop skips the box after a dropped one -- the third stays.
    assert boxes == [[5, 10, 44, 49], [5, 10, 44, 49]]
    m[20:32, 15:27] = 1.0
    m[10:50, 5:45] = np.where(m[10:50, 5:45] == 1.0, 1.0, 0.3)  # plateau 0.3*255 = 76: only level 20
    boxes = heuristic_boxes(m)
    assert boxes[0] == [5, 10, 44, 49]      # loose: the plateau at level 20
    assert boxes[1] == [15, 20, 26, 31]     # tight: the peak at levels 100 and 110
    preds = heuristic_predictions([7, 8, 9], [m, m, m])
    assert [c for c, _ in preds] == [7, 7, 8, 8, 9]
    assert preds[1][1] == [15, 20, 26, 31] and preds[4][1] == [5, 10, 44, 49]
    assert heuristic_boxes(np.ones((5, 5))) == []


def test_pxap_by_hand():
    # scores 0.9 (fg), 0.6 (bg), 0.3 (fg), 0.1 (bg): AP = (1 + 2/3) / 2
    m = np.array([[0.9, 0.6], [0.3, 0.1]])
    gt = np.array([[1, 0], [1, 0]], np.uint8)
    ev = PxAPEvaluator(threshold_step=0.25)
    ev.accumulate([m], [gt])
    assert ev.compute()["PxAP"] == pytest.approx(100 * (1 + 2 / 3) / 2, abs=1e-12)
    # ignoring the 0.6 background pixel: ranking fg, fg, bg -> AP 1
    ev = PxAPEvaluator(threshold_step=0.25)
    ev.accumulate([m], [np.array([[1, 255], [1, 0]], np.uint8)])
    assert ev.compute()["PxAP"] == pytest.approx(100.0, abs=1e-12)


def test_pxap_equals_the_protocol_formula_on_random_maps():
    rng = np.random.default_rng(3)
    thr = np.arange(0, 1, 0.01)
    edges = np.append(thr, [1.0, 2.0, 3.0])
    fg_hist = np.zeros(len(thr) + 2)
    bg_hist = np.zeros(len(thr) + 2)
    ev = PxAPEvaluator(threshold_step=0.01)
    for _ in range(4):
        m = rng.random((16, 16))
        gt = (rng.random((16, 16)) < 0.3).astype(np.uint8)
        gt[rng.random((16, 16)) < 0.1] = 255
        ev.accumulate([m], [gt])
        fg_hist += np.histogram(m[gt == 1], bins=edges)[0]
        bg_hist += np.histogram(m[gt == 0], bins=edges)[0]
    tp = fg_hist[::-1].cumsum()
    fp = bg_hist[::-1].cumsum()
    with np.errstate(invalid="ignore"):
        precision = tp / (tp + fp)
    recall = tp / fg_hist.sum()
    expected = (precision[1:] * np.diff(recall))[((tp + fp) != 0)[1:]].sum() * 100
    assert ev.compute()["PxAP"] == expected


def test_mask_ground_truth_from_files(tmp_path):
    from PIL import Image

    a = np.zeros((4, 4), np.uint8); a[:2, :2] = 255
    b = np.zeros((4, 4), np.uint8); b[3, 3] = 255
    ign = np.zeros((4, 4), np.uint8); ign[:, :] = 255
    for name, arr in (("a.png", a), ("b.png", b), ("i.png", ign)):
        Image.fromarray(arr).save(tmp_path / name)
    gt = ground_truth([str(tmp_path / "a.png"), str(tmp_path / "b.png")], str(tmp_path / "i.png"), size=4)
    assert gt.tolist() == [[1, 1, 255, 255], [1, 1, 255, 255], [255, 255, 255, 255], [255, 255, 255, 1]]
    with pytest.raises(ValueError, match="missing.png: cannot read mask"):
        ground_truth([str(tmp_path / "missing.png")], None)


# --------------------------------------------------------------------------- all-reduce under torchrun
def test_collectives_use_the_current_cuda_device_under_nccl(monkeypatch):
    """NCCL moves CUDA tensors only: the metric sums went through it as CPU tensors."""
    import torch
    import torch.distributed as dist

    from camloc.metrics.base import collective_device

    monkeypatch.setattr(dist, "get_backend", lambda *a: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert collective_device() == torch.device("cuda", 3)
    monkeypatch.setattr(dist, "get_backend", lambda *a: "gloo")
    assert collective_device() == torch.device("cpu")


def test_local_device_sets_this_process_cuda_device(monkeypatch):
    import torch

    from camloc.pipeline.distributed import local_device

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert local_device() == "cuda:2" and chosen == [2]
    assert local_device("cpu") == "cpu" and chosen == [2]


def test_all_reduce_in_a_one_process_gloo_group_keeps_the_sums(tmp_path):
    import numpy as np
    import torch.distributed as dist

    from camloc.metrics.base import Evaluator

    ev = Evaluator()
    ev._state = {"hits": np.array([3, 4], np.int64), "area": np.array([0.5])}
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ev.all_reduce()
    finally:
        dist.destroy_process_group()
    assert ev._state["hits"].tolist() == [3, 4] and ev._state["hits"].dtype == np.int64
    assert ev._state["area"].tolist() == [0.5]
