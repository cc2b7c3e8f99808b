"""Figures: the top-k panel's layout and scaled boxes, read back from the written PNG."""

from __future__ import annotations

import cv2
import numpy as np

from camloc.boxes import scale_box
from camloc.viz import topk_figure


def test_figure_boxes_use_the_one_scaling_rule():
    # a thumbnail's box is carried by boxes.scale_box, the rule the paper box's grid uses:
    # edges halfway between the pixels in and out, rounded halves up (pinned in test_boxes)
    assert scale_box([20, 10, 79, 49], (200, 100), (100, 50)) == [10, 5, 40, 25]
    assert scale_box([0, 0, 199, 99], (200, 100), (100, 50)) == [0, 0, 99, 49]  # the whole image stays whole
    assert scale_box([7, 7, 7, 7], (200, 100), (20, 10)) == [0, 0, 0, 0]  # a pixel stays a pixel
    assert scale_box(None, (200, 100), (100, 50)) is None


def test_topk_panel_layout_and_box(tmp_path):
    image = np.full((100, 200, 3), 128, np.uint8)
    m = np.zeros((100, 200), np.float32)
    m[10:50, 20:80] = 1.0
    path = tmp_path / "k.png"
    topk_figure(image, [m, m], [[20, 10, 79, 49], None], ["1. a", "2. b"], path, panel_height=50)
    out = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    band = 13 + 9
    # 4 px margins, a title band over each 50 px panel; panels 100 px wide with 6 px gaps
    assert out.shape == (4 + band + 50 + 4, 4 + 3 * 100 + 2 * 6 + 4, 3)
    top, left = 4 + band, 4 + 100 + 6  # the first class's panel
    assert tuple(out[top + 15, left + 10]) == (0, 255, 0)  # the box's left edge, scaled by 0.5
    assert tuple(out[top + 15, left + 39]) == (0, 255, 0)  # its right edge
    assert tuple(out[top + 15, 4 + 50]) == (128, 128, 128)  # the input panel, untouched
    second = 4 + 2 * 106
    assert not (out[top:, second : second + 100] == (0, 255, 0)).all(axis=-1).any()  # no box there
