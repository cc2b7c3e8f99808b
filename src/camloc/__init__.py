"""camloc: Class Activation Mapping (CAM) — classify and localize in one forward pass.

    >>> import camloc
    >>> net = camloc.load_model()                 # EfficientNet-Lite0, ImageNet, embedded
    >>> out = camloc.cam(net, net.preprocess([img]), topk=5)
    >>> camloc.boxes_from_map(out.maps[0, 0].numpy())
"""

from camloc.boxes import box_iou, boxes_from_map
from camloc.cam import class_maps, normalize_map, upsample
from camloc.export import export_onnx
from camloc.extract import CamOutput, cam, check_exact, extract
from camloc.localize import localize
from camloc.models import CamNet, HeadError, ModelError, Preprocessing, available_models, find_head, load_model
from camloc.models.checkpoint import save_checkpoint
from camloc.models.gapify import gapify

__version__ = "0.1.0"

__all__ = [
    "CamNet", "CamOutput", "HeadError", "ModelError", "Preprocessing", "available_models", "box_iou",
    "boxes_from_map", "cam", "check_exact", "class_maps", "export_onnx", "extract", "find_head", "gapify", "load_model", "localize",
    "normalize_map", "save_checkpoint", "upsample",
]

