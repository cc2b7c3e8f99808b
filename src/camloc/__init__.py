"""camloc: Class Activation Mapping (CAM) — classify and localize in one forward pass.

    >>> import camloc
    >>> net = camloc.load_model()                 # the default: EfficientNet-Lite1, ImageNet, embedded
    >>> out = camloc.cam(net, net.preprocess([img]), topk=5)
    >>> camloc.boxes_from_map(out.maps[0, 0].numpy())

``import camloc`` is cheap: each name below is imported on first use (torch with the first
name that needs it), so the command line starts without torch.
"""

from camloc._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "box_iou": "camloc.boxes", "boxes_from_map": "camloc.boxes",
    "class_maps": "camloc.cam", "normalize_map": "camloc.readings", "upsample": "camloc.readings",
    "export_onnx": "camloc.export",
    "CamOutput": "camloc.extract", "cam": "camloc.extract", "check_exact": "camloc.extract", "extract": "camloc.extract",
    "localize": "camloc.localize",
    "CamNet": "camloc.models", "HeadError": "camloc.models", "ModelError": "camloc.models",
    "Preprocessing": "camloc.models", "available_models": "camloc.models", "find_head": "camloc.models",
    "load_model": "camloc.models",
    "save_checkpoint": "camloc.models.checkpoint",
    "gapify": "camloc.models.gapify",
}

__all__ = sorted(_EXPORTS, key=str.lower)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
