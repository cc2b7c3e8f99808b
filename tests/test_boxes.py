"""Boxes from hand-made maps, and box invariants as properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from camloc.boxes import (
    best_iou,
    box_iou,
    scale_box,
    boxes_from_map,
    boxes_from_mask,
    boxes_from_raw,
    iou_matrix,
    mask_from_map,
)
from camloc.readings import map_status, normalize_map, upsample
from camloc.metrics._levels import _iou_best


def test_single_blob():
    m = np.zeros((6, 8))
    m[2:4, 3:7] = 1.0
    assert boxes_from_map(m) == [[3, 2, 6, 3]]


def test_largest_component_wins_and_all_components_sorted():
    m = np.zeros((10, 10))
    m[0:2, 0:2] = 1.0  # 4 px
    m[5:9, 4:9] = 0.5  # 20 px, lower but above 20 % of max
    m[9, 0] = 0.9  # 1 px
    assert boxes_from_map(m, threshold=0.2) == [[4, 5, 8, 8]]
    assert boxes_from_map(m, threshold=0.2, largest_only=False) == [[4, 5, 8, 8], [0, 0, 1, 1], [0, 9, 0, 9]]
    # At 60 % of the max the 0.5 blob drops out.
    assert boxes_from_map(m, threshold=0.6) == [[0, 0, 1, 1]]


def test_eight_connectivity_joins_diagonals():
    m = np.eye(4)
    assert boxes_from_map(m) == [[0, 0, 3, 3]]


def test_tie_keeps_raster_order():
    m = np.zeros((5, 7))
    m[3:5, 0:2] = 1.0  # 4 px, starts later in raster order
    m[0:2, 5:7] = 1.0  # 4 px, first pixel at row 0
    assert boxes_from_map(m) == [[5, 0, 6, 1]]


def test_borders_and_full_map():
    m = np.zeros((4, 4))
    m[:, 3] = 1.0
    assert boxes_from_map(m) == [[3, 0, 3, 3]]
    ramp = np.arange(16, dtype=float).reshape(4, 4)  # normalized: 0, 1/15, ...; > 0.2 from value 4 on
    assert boxes_from_map(ramp) == [[0, 1, 3, 3]]


def test_signed_map_is_min_max_normalized_first():
    m = np.array([[-10.0, -10.0], [-10.0, -2.0]])
    assert boxes_from_map(m) == [[1, 1, 1, 1]]


@pytest.mark.parametrize("m", [np.zeros((5, 5)), np.full((3, 4), 2.5), np.array([[0.0, np.nan], [1.0, 2.0]]),
                               np.array([[np.inf, 0.0]])])
def test_constant_or_non_finite_gives_no_box(m):
    assert boxes_from_map(m) == []


def test_empty_mask_and_bad_shape():
    assert boxes_from_mask(np.zeros((3, 3), bool)) == []
    with pytest.raises(ValueError, match="2-D"):
        boxes_from_map(np.zeros((2, 2, 2)))


def test_iou_inclusive_pixels():
    assert box_iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    # 10x10 and 10x10 shifted by 5: overlap 5x10 = 50, union 150.
    assert box_iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 1.0  # one pixel is a box
    assert box_iou([0, 0, 4, 4], [5, 5, 9, 9]) == 0.0


maps = arrays(np.float32, st.tuples(st.integers(1, 24), st.integers(1, 24)),
              elements=st.floats(-5, 5, width=32, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(m=maps, threshold=st.floats(0.0, 0.95))
def test_box_invariants(m, threshold):
    boxes = boxes_from_map(m, threshold=threshold, largest_only=False)
    if float(m.max()) == float(m.min()):
        assert boxes == []
        return
    h, w = m.shape
    mask = mask_from_map(m, threshold)
    # The maximum is always above the threshold, so there is at least one box.
    assert boxes
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h
        assert mask[y0:y1 + 1, x0:x1 + 1].any()
    # Every mask pixel lies in some component box.
    covered = np.zeros_like(mask)
    for x0, y0, x1, y1 in boxes:
        covered[y0:y1 + 1, x0:x1 + 1] = True
    assert not (mask & ~covered).any()
    # The largest component's box comes first and is what the default returns.
    assert boxes_from_map(m, threshold=threshold) == boxes[:1]


@settings(max_examples=100, deadline=None)
@given(a=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)),
       b=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)))
def test_iou_matches_pixel_counting(a, b):
    a = [min(a[0], a[2]), min(a[1], a[3]), max(a[0], a[2]), max(a[1], a[3])]
    b = [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
    ma = np.zeros((21, 21), bool)
    mb = np.zeros((21, 21), bool)
    ma[a[1]:a[3] + 1, a[0]:a[2] + 1] = True
    mb[b[1]:b[3] + 1, b[0]:b[2] + 1] = True
    assert box_iou(a, b) == pytest.approx((ma & mb).sum() / (ma | mb).sum())


def test_positive_reading_cuts_at_a_fraction_of_the_max():
    m = np.array([[-5.0, 1.0, 2.0], [0.5, 10.0, -1.0]])
    # min-max: the cut is -5 + 0.2 * 15 = -2, below the map's zero: everything but the -5
    assert mask_from_map(m, 0.2).tolist() == [[False, True, True], [True, True, True]]
    # positive part over the max: the cut is 0.2 * 10 = 2 (strictly above)
    assert mask_from_map(m, 0.2, norm="positive").tolist() == [[False, False, False], [False, True, False]]
    assert boxes_from_map(m, 0.2, norm="positive") == [[1, 1, 1, 1]]
    assert boxes_from_map(m, 0.05, norm="positive") == [[1, 0, 2, 1]]  # 1, 2 and 10 are above 0.5
    assert np.allclose(normalize_map(m, "positive"), [[0, 0.1, 0.2], [0.05, 1, 0]])


def test_positive_reading_of_a_map_without_positive_evidence():
    m = np.array([[-3.0, -1.0], [-2.0, -0.5]])
    assert boxes_from_map(m, 0.9) == [[1, 1, 1, 1]]  # min-max still finds the least negative pixel
    assert map_status(m, "positive") == "no positive evidence"
    assert boxes_from_map(m, norm="positive") == []
    assert not mask_from_map(m, norm="positive").any() and not normalize_map(m, "positive").any()
    with pytest.raises(ValueError, match="unknown map normalization 'max'"):
        boxes_from_map(m, norm="max")


@settings(max_examples=150, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.floats(-100, 100, width=32)), st.floats(0, 0.95))
def test_positive_mask_nests_in_the_min_max_mask(m, threshold):
    """For a map that reaches 0 or below, the min-max cut ``lo + t (hi - lo)`` is at most ``t hi``:
    the positive reading's pixels are a subset; for a map above 0 everywhere, a superset."""
    pos, mm = mask_from_map(m, threshold, "positive"), mask_from_map(m, threshold)
    if map_status(m, "positive") is not None:
        assert not pos.any()
    elif m.min() <= 0:
        assert not (pos & ~mm).any()
    else:
        assert not (mm & ~pos).any()
    assert not (pos & (m <= 0)).any()  # negative evidence never enters a positive-part box


def test_constant_positive_map_is_uniform_evidence():
    m = np.full((3, 4), 2.5)
    assert boxes_from_map(m) == []  # min-max: no range
    assert boxes_from_map(m, norm="positive") == [[0, 0, 3, 2]]
    assert normalize_map(m, "positive").min() == 1.0 and map_status(m, "positive") is None
    assert map_status(np.zeros((2, 2)), "positive") == "no positive evidence"


_coords = st.integers(-3, 12)


@settings(max_examples=200, deadline=None)
@given(a=st.lists(st.tuples(_coords, _coords, _coords, _coords), min_size=1, max_size=4),
       b=st.lists(st.tuples(_coords, _coords, _coords, _coords), min_size=1, max_size=4))
def test_the_iou_forms_agree_exactly(a, b):
    """The pair, the matrix, the best-of-a-list and the compiled sweep's IoU are one formula, also
    on inverted boxes (which score 0)."""
    mat = iou_matrix(a, b)
    assert mat.shape == (len(a), len(b))
    for i, x in enumerate(a):
        assert [box_iou(x, y) for y in b] == mat[i].tolist()
        assert best_iou(x, b) == mat[i].max()
        assert _iou_best(*x, np.asarray(b, np.int64)) == max(0.0, mat[i].max())


def test_best_iou_by_hand():
    assert best_iou([0, 0, 9, 9], [[20, 20, 30, 30], [5, 0, 14, 9]]) == pytest.approx(50 / 150)
    assert best_iou(None, [[0, 0, 9, 9]]) == 0.0
    assert best_iou([0, 0, 9, 9], []) == 0.0


def test_boxes_from_raw_is_the_rule_on_the_upsampled_map():
    raw = np.array([[0.0, 1.0, 0.0], [0.0, 4.0, 3.0], [-1.0, 0.0, 0.0]], np.float32)
    up = upsample(raw, (30, 40))  # (height, width)
    assert boxes_from_raw(raw, (40, 30), 0.6) == boxes_from_map(up, 0.6) == [[13, 8, 39, 19]]  # cut at 2.0
    assert boxes_from_raw(raw, (40, 30), 0.5, largest_only=False) == boxes_from_map(up, 0.5, largest_only=False)
    # a cap: found on the 20 x 15 grid, carried back to the image (within a grid step, 2 pixels)
    small = boxes_from_map(upsample(raw, (15, 20)), 0.6)[0]
    assert boxes_from_raw(raw, (40, 30), 0.6, cap=20) == [scale_box(small, (20, 15), (40, 30))] == [[14, 8, 39, 20]]
    assert boxes_from_raw(np.full((3, 3), 2.0), (40, 30)) == []  # constant: no box
    assert boxes_from_raw(np.array([[np.nan, 1.0]]), (40, 30)) == []


def test_boxes_load_no_torch():
    import subprocess
    import sys

    code = "import sys, camloc.boxes, camloc.metrics.maxboxacc; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_scale_box_is_one_rule_written_out():
    # edges halfway between the pixels in and out, carried over and rounded (halves up)
    assert scale_box([10, 0, 19, 749], (1000, 750), (4000, 3000)) == [40, 0, 80, 2999]
    assert scale_box([20, 10, 79, 49], (200, 100), (100, 50)) == [10, 5, 40, 25]
    assert scale_box([3, 4, 10, 12], (80, 60), (80, 60)) == [3, 4, 10, 12]  # same size: the identity
    assert scale_box([7, 7, 7, 7], (200, 100), (20, 10)) == [0, 0, 0, 0]  # a pixel stays a pixel
    assert scale_box(None, (10, 10), (5, 5)) is None


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300), st.integers(1, 300), st.data())
def test_scale_box_stays_inside_and_near(w, h, tw, th, data):
    x0 = data.draw(st.integers(0, w - 1))
    x1 = data.draw(st.integers(x0, w - 1))
    y0 = data.draw(st.integers(0, h - 1))
    y1 = data.draw(st.integers(y0, h - 1))
    out = scale_box([x0, y0, x1, y1], (w, h), (tw, th))
    assert 0 <= out[0] <= out[2] < tw and 0 <= out[1] <= out[3] < th
    # each edge within one target pixel of the exact edge ``x * tw / w``
    sx, sy = tw / w, th / h
    assert abs(out[0] - x0 * sx) <= 1 and abs(out[2] + 1 - (x1 + 1) * sx) <= 1 + (out[2] == out[0])
    assert abs(out[1] - y0 * sy) <= 1 and abs(out[3] + 1 - (y1 + 1) * sy) <= 1 + (out[3] == out[1])


def test_pointing_game_written_out():
    from camloc.boxes import inside, peak, pointing_hit

    m = np.array([[0.0, 3.0, 1.0], [3.0, np.nan, 0.0]])
    assert peak(m) == (1, 0)  # the first maximum in raster order; NaN never wins
    assert pointing_hit(m, [[1, 0, 2, 1]]) and not pointing_hit(m, [[0, 1, 2, 1]])
    assert not pointing_hit(m, [])
    assert inside((5, 5), [5, 5, 5, 5]) and not inside((6, 5), [5, 5, 5, 5]) and inside((7, 5), [5, 5, 5, 5], 2)
