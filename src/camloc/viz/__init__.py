"""Figures, all drawn here; the rest of the library computes maps, boxes and numbers and calls
these. ``panels``: maps over images with OpenCV and Pillow (the localize figures); ``plots``:
matplotlib charts and :func:`save_figure`; ``grids``: grids of images (evaluation examples, units,
discovered patterns, the reproduction's, the text benchmark's and the generated experiments'
examples). matplotlib is imported only when a chart or a grid is drawn."""

from camloc.viz.panels import (
    BOX_COLOR, GT_COLOR, draw_box, heat_overlay, overlay_figure, printable, save_png, topk_figure,
)
from camloc.viz.plots import save_figure

__all__ = [
    "BOX_COLOR", "GT_COLOR", "draw_box", "heat_overlay", "overlay_figure", "printable", "save_figure", "save_png",
    "topk_figure",
]
