"""The WSOL methods of the CVPR 2020 benchmark as options of ONE training step.

``wsol_method`` in a training config picks one; its keys go in ``[wsol_args]`` (see
:mod:`camloc.train.wsol.spec` for the keys and their published defaults):

==========  ====================================  ===============================================
method      what it changes in the step            test-time map
==========  ====================================  ===============================================
``cam``     nothing (cross-entropy)                the net's CAM
``has``     input: random patches hidden           the net's CAM
``acol``    extra branch B on erased features      branch A's CAM (the net's own)
``spg``     three pixel heads, seed-mask losses    the classifier's CAM
``adl``     feature hooks (train mode only)        the net's CAM (ADL is the identity in eval)
``cutmix``  input boxes swapped, labels mixed      the net's CAM
==========  ====================================  ===============================================

Every method's checkpoint is the plain net, so every evaluator reads its maps unchanged; the
methods' own layers (ACoL's branch B, SPG's heads) are saved in ``last.pt``'s training state
so that a run resumes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from camloc.train.wsol.acol import ACoL
from camloc.train.wsol.adl import ADL
from camloc.train.wsol.base import Method, WsolStep, gap_parts, label_map
from camloc.train.wsol.cutmix import CutMix
from camloc.train.wsol.has import HaS
from camloc.train.wsol.spec import DEFAULTS, METHODS, resolve
from camloc.train.wsol.spg import SPG

_CLASSES: dict[str, type[Method]] = {"cam": Method, "has": HaS, "acol": ACoL, "spg": SPG, "adl": ADL,
                                     "cutmix": CutMix}


def build_method(name: str, args: dict[str, Any], net: nn.Module) -> Method:
    """Method ``name`` with its options (defaults updated by ``args``), attached to ``net``."""
    method = _CLASSES[name](**resolve(name, args))
    method.attach(net)
    return method


__all__ = ["DEFAULTS", "METHODS", "Method", "WsolStep", "build_method", "gap_parts", "label_map", "resolve"]
