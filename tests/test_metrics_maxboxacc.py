"""MaxBoxAcc / MaxBoxAccV2: hand-computed boxes and metrics, and equality with the published
protocol's per-threshold contour loop (benchmarks/protocol_reference.py) on generated maps."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.protocol_reference import ReferenceBoxEvaluator, reference_best_iou  # noqa: E402
from camloc.boxes import contour_boxes, iou_matrix  # noqa: E402
from camloc.metrics._levels import level_sweep  # noqa: E402
from camloc.metrics.maxboxacc import (  # noqa: E402
    MaxBoxAccEvaluator,
    best_iou_per_threshold,
    cam_thresholds,
    check_scoremap,
    resize_box,
    threshold_levels,
    to_gray,
)


# ---------------------------------------------------------------- hand-computed boxes and IoUs
def test_box_is_one_pixel_wider_than_the_block_and_iou_counts_inclusively():
    m = np.zeros((6, 7))
    m[1:3, 2:5] = 1.0  # rows 1-2, columns 2-4
    gray = (m * 255).astype(np.uint8)
    # boundingRect (2, 1, 3, 2) -> [x, y, x + w, y + h] = [2, 1, 5, 3]
    assert contour_boxes(gray, 127) == [[2, 1, 5, 3]]
    # IoU with the exact inclusive block [2, 1, 4, 2]: inter 3*2 = 6, areas 4*3 = 12 and 6 -> 0.5
    assert iou_matrix([[2, 1, 5, 3]], [[2, 1, 4, 2]])[0, 0] == pytest.approx(0.5, abs=0)
    best = best_iou_per_threshold(m, np.array([[2, 1, 4, 2]]), np.array([0.0, 0.5]))
    assert best.tolist() == [0.5, 0.5]


def test_box_clipped_at_the_last_column_and_empty_mask_box():
    m = np.zeros((4, 5))
    m[0:4, 3:5] = 1.0  # touches the right and bottom edges
    gray = (m * 255).astype(np.uint8)
    # (3, 0, 2, 4) -> [3, 0, 5, 4], clipped to [3, 0, 4, 3]
    assert contour_boxes(gray, 0) == [[3, 0, 4, 3]]
    assert contour_boxes(np.zeros((4, 5), np.uint8), 0) == [[0, 0, 0, 0]]
    # an all-zero map has no contour at any threshold: the box [0, 0, 0, 0] (area 1) is scored
    # against [0, 0, 1, 1] (area 4): IoU 1/4
    assert best_iou_per_threshold(np.zeros((4, 5)), np.array([[0, 0, 1, 1]]), np.array([0.0, 0.3])).tolist() == [0.25, 0.25]


def test_ring_has_an_outer_and_a_hole_box_and_the_hole_box_counts_with_all_contours():
    m = np.zeros((7, 7))
    m[1:6, 1:6] = 1.0
    m[3, 3] = 0.0  # a one-pixel hole
    gray = (m * 255).astype(np.uint8)
    # outer: (1, 1, 5, 5) -> [1, 1, 6, 6]; hole: pixels around (3, 3): (2, 2, 3, 3) -> [2, 2, 5, 5]
    assert sorted(contour_boxes(gray, 0)) == [[1, 1, 6, 6], [2, 2, 5, 5]]
    gt = np.array([[2, 2, 4, 4]])  # 9 pixels
    # outer: inter 9, areas 36 + 9 - 9 -> 0.25; hole: inter 9, areas 16 + 9 - 9 -> 0.5625
    assert best_iou_per_threshold(m, gt, np.array([0.0]), multi_contour=True).tolist() == [0.5625]
    assert best_iou_per_threshold(m, gt, np.array([0.0]), multi_contour=False).tolist() == [0.25]
    sweep = level_sweep(gray, gt, np.array([0]))
    assert (sweep["outer"][0], sweep["holes"][0]) == (1, 1)


def test_diagonal_background_pixels_are_two_holes():
    m = np.ones((6, 6))
    m[2, 2] = 0.0
    m[3, 3] = 0.0  # 4-connected background: two separate holes
    gray = (m * 255).astype(np.uint8)
    sweep = level_sweep(gray, np.array([[0, 0, 5, 5]]), np.array([0]))
    assert (sweep["outer"][0], sweep["holes"][0]) == (1, 2)
    assert sorted(contour_boxes(gray, 0)) == [[0, 0, 5, 5], [1, 1, 4, 4], [2, 2, 5, 5]]


def test_thresholds_map_to_levels_as_int_of_tau_times_max():
    thr = cam_thresholds(0.25)
    assert thr.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert threshold_levels(thr, 200).tolist() == [0, 50, 100, 150]
    assert threshold_levels(thr, 0).tolist() == [0, 0, 0, 0]


def test_resize_box_truncates_each_coordinate():
    # 500x375 image -> 224: 100*224/500 = 44.8 -> 44; 50*224/375 = 29.87 -> 29; 499 -> 223.55 -> 223
    assert resize_box([100, 50, 499, 374], (500, 375)) == [44, 29, 223, 223]


# ---------------------------------------------------------------- a metric over five images by hand
def five_maps() -> tuple[list[np.ndarray], list[list[list[int]]]]:
    """Five 8x8 maps; CAM thresholds 0, .25, .5, .75 (step 0.25); max gray 255 in each map, so the
    levels are 0, 63, 127, 191."""
    maps, gts = [], []
    # 1: a 4x4 block of 1.0 at rows/cols 2-5 with a 0.6 border ring (rows/cols 1-6).
    #    level 0/63: ring+block, box [1,1,7,7]; level 127/191 (0.6*255 = 153 > 127 -> ring stays
    #    at 127, gone at 191): [1,1,7,7], then block [2,2,6,6].
    m = np.zeros((8, 8)); m[1:7, 1:7] = 0.6; m[2:6, 2:6] = 1.0
    maps.append(m); gts.append([[2, 2, 5, 5]])
    # IoUs vs gt [2,2,5,5] (16 px): [1,1,7,7] (49 px): 16/49 = 0.3265; [2,2,6,6] (25 px): 16/25 = 0.64
    # 2: the whole map 1.0 except one 0 pixel at the corner: box [0,0,7,7] at every level;
    #    gt the whole map [0,0,7,7] -> IoU 1 everywhere.
    m = np.ones((8, 8)); m[0, 0] = 0.0
    maps.append(m); gts.append([[0, 0, 7, 7]])
    # 3: two blobs: 1.0 at rows 0-1 cols 0-1, 0.5 at rows 5-7 cols 5-7.
    #    levels 0, 63: two boxes [0,0,2,2] and [5,5,7,7]; 127 (0.5*255 = 127 -> not > 127), 191:
    #    only [0,0,2,2]. gt [5,5,7,7] (9 px): IoU of [5,5,7,7] = 1 at levels 0, 63; at 127/191 the
    #    only box [0,0,2,2] misses -> 0. Largest contour at levels 0/63: areas 1 vs 4 -> the 0.5 blob.
    m = np.zeros((8, 8)); m[0:2, 0:2] = 1.0; m[5:8, 5:8] = 0.5
    maps.append(m); gts.append([[5, 5, 7, 7]])
    # 4: a gradient row-wise: row r has value r/7. gray = int(255*r/7): 0,36,72,109,145,182,218,255.
    #    level 0: rows 1-7 -> box [0,1,7,7]; 63: rows 2-7 -> [0,2,7,7]; 127: rows 4-7 -> [0,4,7,7];
    #    191: rows 5-7 -> [0,5,7,7]. gt [0,4,7,7] (32 px): IoUs 32/56 = .571, 32/48 = .667, 1, 24/32 = .75
    m = np.repeat((np.arange(8) / 7.0)[:, None], 8, axis=1)
    maps.append(m); gts.append([[0, 4, 7, 7]])
    # 5: a single bright pixel at (3, 3): box [3,3,4,4] (4 px) at every level; gt [3,3,3,3]: 1/4.
    m = np.zeros((8, 8)); m[3, 3] = 1.0
    maps.append(m); gts.append([[3, 3, 3, 3]])
    return maps, gts


def test_metric_over_five_images_worked_by_hand():
    maps, gts = five_maps()
    ev = MaxBoxAccEvaluator(iou_thresholds=(30, 50, 70), threshold_step=0.25, multi_contour=True)
    ev.accumulate(maps, gts)
    # best IoU per (image, level 0, 63, 127, 191):
    # 1: .3265 .3265 .3265 .64 | 2: 1 1 1 1 | 3: 1 1 0 0 | 4: .571 .667 1 .75 | 5: .25 x4
    # delta .3: counts 4 4 3 4 -> 80 80 60 80 -> MaxBoxAcc@30 = 80
    # delta .5: image1 only at 191; 2; 3 at 0,63; 4 all -> 3 3 2 3 -> 60 60 40 60 -> 60
    # delta .7: 2; 3 at 0,63; 4 at 127,191 -> 2 2 2 2 -> 40
    r = ev.compute()
    assert r["MaxBoxAcc@30"] == 80.0
    assert r["MaxBoxAcc@50"] == 60.0
    assert r["MaxBoxAcc@70"] == 40.0
    assert r["MaxBoxAccV2"] == pytest.approx(60.0, abs=1e-12)
    assert r["best_threshold"] == {"30": 0.0, "50": 0.0, "70": 0.0}
    assert r["num_images"] == 5
    assert ev.curves()[50].tolist() == [60.0, 60.0, 40.0, 60.0]


def test_five_images_largest_contour_by_hand():
    maps, gts = five_maps()
    ev = MaxBoxAccEvaluator(iou_thresholds=(50,), threshold_step=0.25, multi_contour=False)
    ev.accumulate(maps, gts)
    # only image 3 changes: at levels 0/63 the largest contour is the 3x3 blob (area 4 vs 1),
    # the one matching the gt -> same counts as with all contours: 3 3 2 3 -> 60
    assert ev.curves()[50].tolist() == [60.0, 60.0, 40.0, 60.0]
    assert ev.compute()["MaxBoxAcc@50"] == 60.0


def test_states_merge_like_one_run():
    maps, gts = five_maps()
    whole = MaxBoxAccEvaluator(threshold_step=0.25)
    whole.accumulate(maps, gts)
    a, b = MaxBoxAccEvaluator(threshold_step=0.25), MaxBoxAccEvaluator(threshold_step=0.25)
    a.accumulate(maps[:2], gts[:2])
    b.accumulate(maps[2:], gts[2:])
    a.merge(b.state())
    assert a.compute() == whole.compute()
    with pytest.raises(ValueError, match="another configuration"):
        a.merge(MaxBoxAccEvaluator(threshold_step=0.1).state())


# ---------------------------------------------------------------- equality with the protocol
def smooth_map(rng: np.random.Generator, cells: int, size: int = 224) -> np.ndarray:
    """A CAM-like map: random low-resolution scores, bicubic upsampling, min-max normalization."""
    low = rng.standard_normal((cells, cells)).astype(np.float32)
    up = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    return (up - up.min()) / (up.max() - up.min())


def random_boxes(rng: np.random.Generator, size: int, k: int) -> np.ndarray:
    out = []
    for _ in range(k):
        x0, x1 = np.sort(rng.integers(0, size, 2))
        y0, y1 = np.sort(rng.integers(0, size, 2))
        out.append([x0, y0, x1, y1])
    return np.asarray(out)


@pytest.mark.parametrize("multi_contour", [True, False])
def test_equal_to_protocol_on_generated_cam_maps(multi_contour):
    rng = np.random.default_rng(7)
    thr = cam_thresholds(0.01)
    ours = MaxBoxAccEvaluator(iou_thresholds=(30, 50, 70), threshold_step=0.01, multi_contour=multi_contour)
    ref = ReferenceBoxEvaluator(thr, (30, 50, 70), multi_contour)
    for i in range(12):
        m = smooth_map(rng, cells=int(rng.integers(3, 15)))
        if i % 4 == 3:
            m = m * rng.uniform(0.2, 1.0)  # max below 1: levels int(tau * max(g))
        gt = random_boxes(rng, 224, int(rng.integers(1, 4)))
        np.testing.assert_array_equal(best_iou_per_threshold(m, gt, thr, multi_contour), reference_best_iou(m, gt, thr, multi_contour))
        ours.accumulate([m], [gt])
        ref.accumulate(m, gt)
    r = ours.compute()
    expected = ref.compute()
    assert [r["MaxBoxAcc@30"], r["MaxBoxAcc@50"], r["MaxBoxAcc@70"]] == expected
    assert r["MaxBoxAccV2"] == float(np.average(expected))


def test_equal_to_protocol_at_a_thousand_thresholds_on_smooth_and_noisy_maps():
    rng = np.random.default_rng(11)
    thr = cam_thresholds(0.001)
    for cells, size, noise in ((6, 224, 0.0), (12, 72, 0.3)):  # noise: many small blobs and holes
        m = smooth_map(rng, cells, size) * (1 - noise) + rng.random((size, size)) * noise
        m = (m - m.min()) / (m.max() - m.min())
        gt = random_boxes(rng, size, 2)
        for multi in (True, False):
            np.testing.assert_array_equal(best_iou_per_threshold(m, gt, thr, multi), reference_best_iou(m, gt, thr, multi))


def test_largest_contour_decided_by_area_bounds_where_holes_exist():
    """Where components have holes, the largest contour is taken from the sweep when one
    component's area beats every other's largest possible outer area; each level still equals
    one contour search, and the shortcut is really taken on these maps."""
    rng = np.random.default_rng(5)
    taken = 0
    for i in range(40):
        size = int(rng.integers(20, 60))
        m = smooth_map(rng, int(rng.integers(3, 8)), size) * 0.7 + rng.random((size, size)) * 0.3
        m = (m - m.min()) / (m.max() - m.min())
        gt = random_boxes(rng, size, int(rng.integers(1, 3)))
        levels = np.arange(255)
        thr = levels / 255.0
        np.testing.assert_array_equal(best_iou_per_threshold(m, gt, thr, False), reference_best_iou(m, gt, thr, False))
        sweep = level_sweep(to_gray(m), gt, levels)
        taken += int((sweep["decided"] & (sweep["holes"] > 0) & (sweep["outer"] > 1))[levels].sum())
    assert taken > 100


@settings(max_examples=150, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.sampled_from([0, 40, 90, 200, 255])),
    st.integers(0, 10**6),
)
def test_every_level_equals_a_contour_search(gray, seed):
    """On small maps made of a few values (lots of holes, touching blobs, image-border cases):
    per level, the best IoU and the number of contours equal one contour search."""
    rng = np.random.default_rng(seed)
    h, w = gray.shape
    x0, x1 = np.sort(rng.integers(0, w, 2))
    y0, y1 = np.sort(rng.integers(0, h, 2))
    gt = np.array([[x0, y0, x1, y1]])
    levels = np.arange(255)
    sweep = level_sweep(gray, gt, levels)
    for lv in sorted({0, 39, 40, 89, 90, 199, 200, 254}):
        mask = np.where(gray > lv, np.uint8(255), np.uint8(0))
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        boxes = contour_boxes(gray, lv)
        assert sweep["outer"][lv] + (sweep["holes"][lv] if len(contours) else 0) == len(contours)
        assert sweep["best"][lv] == iou_matrix(boxes, gt).max()
        for multi in (True, False):
            m = gray.astype(np.float64) / 255.0
            tau = np.array([lv / max(int(gray.max()), 1)])
            ours = best_iou_per_threshold(m, gt, tau, multi)
            assert ours.tolist() == reference_best_iou(m, gt, tau, multi).tolist()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, "NaN"), (np.inf, "inf"), (1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]")],
)
def test_bad_maps_are_refused_with_a_one_line_reason(value, message):
    m = np.zeros((4, 4))
    m[1, 1] = value
    with pytest.raises(ValueError, match=message) as err:
        check_scoremap(m, "maps/a.npy")
    assert str(err.value).startswith("maps/a.npy: ") and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="2-D"):
        check_scoremap(np.zeros((2, 2, 2)), "x")


def test_empty_evaluation_and_missing_ground_truth_are_errors():
    ev = MaxBoxAccEvaluator()
    with pytest.raises(ValueError, match="no image"):
        ev.compute()
    with pytest.raises(ValueError, match="no ground-truth box"):
        best_iou_per_threshold(np.zeros((4, 4)), np.zeros((0, 4)), np.array([0.0]))


def test_without_numba_the_per_level_contour_search_gives_the_same(monkeypatch):
    from camloc.metrics import _levels
    from camloc.metrics.maxboxacc import best_ious

    rng = np.random.default_rng(5)
    thr = cam_thresholds(0.01)
    m = smooth_map(rng, 9)
    gt = random_boxes(rng, 224, 2)
    fast = best_ious(m, gt, thr)
    monkeypatch.setattr(_levels, "HAVE_NUMBA", False)
    slow = best_ious(m, gt, thr)
    for multi in (True, False):
        np.testing.assert_array_equal(fast[multi], slow[multi])
        np.testing.assert_array_equal(slow[multi], reference_best_iou(m, gt, thr, multi))
