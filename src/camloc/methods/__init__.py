"""Map methods compared in the same harness, one small file each.

A method is called ``method(net, x, classes) -> (B, k, h, w)`` maps. The registry
:data:`METHODS` (name -> class) is built from the tuple of classes :data:`_CLASSES`; a new method
adds its class there and its name to :mod:`camloc.method_names` (torch-free, read by the command
line). :func:`get_method` builds one by name with its options (``layer``, ``layers``, ``n``,
``sigma``, ...: the parameters of the class's ``__init__``). docs/methods.md lists every method.

Example (the hand-built colour net: every method puts class 0's box on the red square):

    >>> import torch, camloc
    >>> from camloc.testing.nets import colour_net
    >>> x = torch.zeros(1, 3, 64, 64); x[0, 0, 8:24, 40:56] = 2.0
    >>> {name: camloc.boxes_from_map(camloc.get_method(name)(colour_net(), x, [0])[0, 0].numpy())
    ...  for name in ("cam", "backprop", "gradcam", "gradcampp")}  # doctest: +NORMALIZE_WHITESPACE
    {'cam': [[40, 8, 55, 23]], 'backprop': [[40, 8, 55, 23]], 'gradcam': [[40, 8, 55, 23]],
     'gradcampp': [[40, 8, 55, 23]]}
"""

from __future__ import annotations

import inspect
from typing import Any

from camloc.errors import MethodError, one_line
from camloc.method_names import close_names
from camloc.methods.ablationcam import AblationCAM
from camloc.methods.backprop import Backprop
from camloc.methods.base import MapMethod
from camloc.methods.baselines import CenterGaussian, RandomMap
from camloc.methods.cam import CAM
from camloc.methods.eigencam import EigenCAM
from camloc.methods.eigengradcam import EigenGradCAM
from camloc.methods.engine import ENGINES, check_engine, forward_engine
from camloc.methods.finercam import FinerCAM
from camloc.methods.fullgrad import FullGrad
from camloc.methods.gradcam import GradCAM
from camloc.methods.gradcam_elementwise import GradCAMElementWise
from camloc.methods.gradcampp import GradCAMpp
from camloc.methods.hirescam import HiResCAM
from camloc.methods.iscam import ISCAM
from camloc.methods.kpcacam import KPCACAM
from camloc.methods.layercam import LayerCAM
from camloc.methods.legrad import LeGrad
from camloc.methods.refinecam import RefineCAM
from camloc.methods.scorecam import ScoreCAM
from camloc.methods.shapleycam import ShapleyCAM
from camloc.methods.smoothgradcampp import SmoothGradCAMpp
from camloc.methods.sscam import SSCAM
from camloc.methods.xgradcam import XGradCAM

# The registry, one tuple of classes; each class's ``name`` is its registry name.
_CLASSES: tuple[type[MapMethod], ...] = (
    CAM, Backprop, GradCAM, GradCAMpp,
    # gradient family
    XGradCAM, HiResCAM, GradCAMElementWise, LayerCAM, SmoothGradCAMpp, ShapleyCAM, FinerCAM, RefineCAM, FullGrad, LeGrad,
    # perturbation family
    ScoreCAM, SSCAM, ISCAM, AblationCAM,
    # decomposition family
    EigenCAM, EigenGradCAM, KPCACAM,
    # baselines
    RandomMap, CenterGaussian,
)

METHODS: dict[str, type[MapMethod]] = {m.name: m for m in _CLASSES}


def method_options(cls: type[MapMethod]) -> tuple[str, ...]:
    """The options a method takes: the keyword parameters of its ``__init__``."""
    params = inspect.signature(cls.__init__).parameters
    return tuple(p for p in params if p != "self" and params[p].kind in (params[p].POSITIONAL_OR_KEYWORD, params[p].KEYWORD_ONLY))


def get_method(name: str, **options: Any) -> MapMethod:
    """The method registered as ``name``, built with ``options`` (``None`` values mean the
    default). Unknown names and options are one-line :class:`MethodError` s. Every method also
    takes ``engine``: what runs its forward passes without gradients, ``"torch"`` or
    ``"onnxruntime"`` (:mod:`camloc.methods.engine`; by default the engine in force where it is
    called: PyTorch, or the ONNX Runtime backend of the pipeline that calls it).

    Examples:
        >>> import camloc
        >>> camloc.get_method("gradcam")              # doctest: +ELLIPSIS
        <camloc.methods.gradcam.GradCAM object at 0x...>
        >>> camloc.get_method("cam", layer="features")
        Traceback (most recent call last):
        ...
        camloc.errors.MethodError: method 'cam' takes no target layer
    """
    cls = METHODS.get(name)
    if cls is None:
        raise MethodError(f"unknown map method {str(name)[:60]!r}{close_names(name, METHODS)}; "
                          f"expected one of {', '.join(METHODS)}")
    accepted = method_options(cls)
    given = {k: v for k, v in options.items() if v is not None}
    engine = given.pop("engine", None)
    for key in given:
        if key not in accepted:
            if key == "layer":
                raise MethodError(f"method {name!r} takes no target layer")
            raise MethodError(f"method {name!r}: unknown option {str(key)[:40]!r}{close_names(key, accepted)}; "
                              f"it takes {', '.join(accepted) or 'no options'}")
    try:
        method = cls(**given)
        method.engine = None if engine is None else check_engine(engine)
        return method
    except (TypeError, ValueError) as err:
        if isinstance(err, MethodError):
            raise
        raise MethodError(f"method {name!r}: {one_line(err)}") from None


__all__ = ["ENGINES", "AblationCAM", "CAM", "ISCAM", "SSCAM", "ScoreCAM", "METHODS", "Backprop", "CenterGaussian", "EigenCAM", "EigenGradCAM", "FinerCAM", "FullGrad", "GradCAM",
           "GradCAMElementWise", "GradCAMpp", "HiResCAM", "KPCACAM", "LayerCAM", "LeGrad", "MapMethod", "RandomMap",
           "RefineCAM", "ShapleyCAM", "SmoothGradCAMpp", "XGradCAM", "forward_engine", "get_method", "method_options"]
