"""The largest component's box, found from the components' outer borders, equals the labelling
of every pixel (OpenCV's components with statistics, its tie rule) on any mask."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from camloc.boxes import boxes_from_mask, boxes_from_raw
from camloc.readings import map_status, upsample


def labelled_box(mask: np.ndarray) -> list[list[int]]:
    """The reference: every component labelled with its area, the largest (lowest label on a tie)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return []
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[k, :4])
    return [[x, y, x + w - 1, y + h - 1]]


@settings(max_examples=400, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_any_mask(mask):
    assert boxes_from_mask(mask) == labelled_box(mask)


def test_nested_components_ties_and_rings():
    ring = np.zeros((12, 12), bool)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True  # 44 pixels around a hole
    ring[3:9, 3:9] = True  # a 36-pixel component in the hole: the ring wins
    assert boxes_from_mask(ring) == labelled_box(ring) == [[0, 0, 11, 11]]
    ring[2:10, 2:10] = True  # 64 pixels in the hole: now it wins over the ring
    assert boxes_from_mask(ring) == labelled_box(ring) == [[2, 2, 9, 9]]
    tie = np.zeros((6, 9), bool)
    tie[4:6, 0:2] = tie[0:2, 7:9] = tie[3, 4] = True  # two of 4 pixels and a single one
    assert boxes_from_mask(tie) == labelled_box(tie)


def test_random_masks_in_bulk():
    rng = np.random.default_rng(0)
    for i in range(3000):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        if i % 2:
            m = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.5)
            mask = m > np.float32(rng.uniform(-0.3, 0.3))
        else:
            mask = rng.random((h, w)) < rng.uniform(0.05, 0.95)
        assert boxes_from_mask(mask) == labelled_box(mask), i


def test_upsampled_maps_as_localize_reads_them():
    """Raw maps of a CAM's size upsampled to photo sizes, both readings, several thresholds."""
    rng = np.random.default_rng(1)
    for i in range(300):
        h, w = (int(v) for v in rng.integers(5, 12, 2))
        width, height = (int(v) for v in rng.integers(64, 520, 2))
        raw = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.0)
        norm, t = ("minmax", "positive")[i % 2], float(rng.choice([0.1, 0.2, 0.35, 0.5]))
        if map_status(raw, norm) is not None:
            continue
        up = upsample(raw, (height, width))
        cut = t * up.max() if norm == "positive" else up.min() + t * (up.max() - up.min())
        assert boxes_from_raw(raw, (width, height), t, norm=norm) == labelled_box(up > np.float32(cut)), i
