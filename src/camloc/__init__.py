"""camloc: Class Activation Mapping (CAM) — classify and localize in one forward pass.

    >>> import camloc
    >>> net = camloc.load_model()                 # the default: EfficientNet-Lite1, ImageNet, embedded
    >>> out = camloc.cam(net, net.preprocess([img]), topk=5)
    >>> camloc.boxes_from_map(out.maps[0, 0].numpy())
    >>> camloc.overlay(img, out.maps[0, 0])       # a PIL image: the map over the photo

``import camloc`` is cheap: each name below is imported on first use (torch with the first
name that needs it), so the command line starts without torch. Type checkers and the API
reference read the same names from the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from camloc._lazy import lazy_exports
from camloc._version import __version__

_EXPORTS = {
    "box_iou": "camloc.boxes", "boxes_from_map": "camloc.boxes",
    "class_maps": "camloc.cam", "normalize_map": "camloc.readings", "upsample": "camloc.readings",
    "export_onnx": "camloc.export",
    "CamOutput": "camloc.extract", "cam": "camloc.extract", "check_exact": "camloc.extract", "extract": "camloc.extract",
    "localize": "camloc.localize",
    "evaluate": "camloc.evaluate.api",
    "methods": "camloc.methods", "get_method": "camloc.methods",
    "overlay": "camloc.viz.panels",
    "CamNet": "camloc.models", "HeadError": "camloc.models", "ModelError": "camloc.models",
    "Preprocessing": "camloc.models", "available_models": "camloc.models", "find_head": "camloc.models",
    "load_model": "camloc.models",
    "save_checkpoint": "camloc.models.checkpoint",
    "gapify": "camloc.models.gapify",
}

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and the API reference
    from camloc.boxes import box_iou, boxes_from_map
    from camloc.cam import class_maps
    from camloc.evaluate.api import evaluate
    from camloc.export import export_onnx
    from camloc.extract import CamOutput, cam, check_exact, extract
    from camloc.localize import localize
    from camloc import methods
    from camloc.methods import get_method
    from camloc.models import (
        CamNet, HeadError, ModelError, Preprocessing, available_models, find_head, load_model,
    )
    from camloc.models.checkpoint import save_checkpoint
    from camloc.models.gapify import gapify
    from camloc.readings import normalize_map, upsample
    from camloc.viz.panels import overlay

__all__ = sorted(_EXPORTS, key=str.lower)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
