"""From maps to boxes, and IoU: every box in camloc is made and compared here.

Boxes are ``[x0, y0, x1, y1]`` in integer pixel coordinates with inclusive corners (``x1`` is
the last column inside the box), as the ILSVRC protocol writes them; IoU counts pixels
inclusively (+1). NumPy and OpenCV only (no torch).

- :mod:`~camloc.boxes.paper`: the paper's rule (threshold at a fraction of the peak, the largest
  8-connected component, or all of them), on a map at image size or on a raw map.
- :mod:`~camloc.boxes.contours`: contour boxes of the CVPR 2020 protocol (MaxBoxAcc) and the
  paper's several-level heuristic.
- :mod:`~camloc.boxes.iou`: IoU of a pair, of every pair (a matrix), the best against a list, a hit.
- :mod:`~camloc.boxes.points`: a map's peak and the pointing game.
- :mod:`~camloc.boxes.scale`: boxes found on a capped grid, carried back to the image.
"""

from camloc.boxes.contours import contour_boxes, heuristic_boxes
from camloc.boxes.iou import best_iou, box_iou, hit, iou_coords, iou_matrix
from camloc.boxes.paper import (
    Box,
    boxes_from_checked_map,
    boxes_from_map,
    boxes_from_mask,
    boxes_from_raw,
    mask_from_map,
    mass_union_box,
    paper_boxes,
)
from camloc.boxes.points import inside, peak, pointing_hit
from camloc.boxes.scale import BOX_CAP, box_grid, scale_box

__all__ = [
    "BOX_CAP", "Box", "best_iou", "box_grid", "box_iou", "scale_box", "boxes_from_checked_map", "boxes_from_map",
    "boxes_from_mask", "boxes_from_raw", "contour_boxes", "heuristic_boxes", "hit", "inside", "iou_coords",
    "iou_matrix", "mask_from_map", "mass_union_box", "paper_boxes", "peak", "pointing_hit",
]
