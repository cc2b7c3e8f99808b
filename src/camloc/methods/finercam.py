"""Finer-CAM (CVPR 2025, "Spotting the Difference Reveals Finer Details for Visual
Explanation"): a gradient map of the class's score *against the classes it is most confused
with*, so the map shows what sets it apart (fine-grained classes, e.g. CUB birds):

    T_c = S_c - alpha * mean_{d in D} S_d,   D = the ``references`` classes with scores closest to S_c,
    M_c = ReLU(sum_k mean_xy(dT_c/dA_k) A_k)      (Grad-CAM on T_c; ``base`` may pick another).

Options: ``alpha`` (0.6), ``references`` (3), ``compare`` (fixed classes instead), ``base``
(``gradcam``, ``gradcampp`` or ``layercam``), ``layer``. The target is
:class:`camloc.methods.targets.ContrastTarget`.
"""

from __future__ import annotations

from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.methods.gradcam import GradCAM
from camloc.methods.targets import ContrastTarget


class FinerCAM(GradCAM):
    name = "finercam"

    def __init__(self, layer: str | nn.Module | None = None, alpha: float = 0.6, references: int = 3,
                 compare: list[int] | int | None = None, base: str = "gradcam") -> None:
        from camloc.methods.gradcampp import GradCAMpp
        from camloc.methods.layercam import LayerCAM

        super().__init__(layer, ContrastTarget(alpha, references, compare))
        bases = {"gradcam": GradCAM, "gradcampp": GradCAMpp, "layercam": LayerCAM}
        if base not in bases:
            raise MethodError(f"finercam: base must be gradcam, gradcampp or layercam, got {str(base)[:40]!r}")
        self.base = bases[base]()

    def cam_image(self, a: Tensor, g: Tensor) -> Tensor:
        return self.base.cam_image(a, g)
