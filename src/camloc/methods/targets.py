"""What a map explains, kept apart from how the map is made: a *target* turns a model's output
into one score per image for a class, ``target(output, classes (B,)) -> (B,)``, differentiable.

- :class:`ClassTarget` -- the class's logit (the default);
- :class:`ContrastTarget` -- the class's logit minus ``alpha`` times the mean logit of the
  ``references`` classes closest to it in score (Finer-CAM: what sets a class apart from the
  classes it is most confused with);
- :class:`ProbeTarget` -- a probe's output: ``probe(output)`` column ``c`` (a linear probe on an
  embedding, a head that is not the model's);
- :class:`SegmentationTarget` -- a segmentation model's class region: the sum of the class's
  per-pixel logits over the pixels predicted as that class (or a given mask);
- :class:`BoxScoreTarget` -- a detector's box score: the scores of the boxes it predicts with the
  class's label (those overlapping a given box by ``iou``, or the best one).

``uses_logits`` says whether the target reads class logits ``(B, C)`` (then the gradient methods
may read the CAM head's scores, and take the closed forms of a GAP + linear head) or the model's
raw output (a dict of maps, a list of detections).
"""

from __future__ import annotations

import torch
from torch import Tensor


class Target:
    uses_logits = True

    def __call__(self, output: object, classes: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _logits(output: object) -> Tensor:
    return output if isinstance(output, Tensor) else output[0]  # type: ignore[index]


class ClassTarget(Target):
    """``S_c``: the class's logit."""

    def __call__(self, output: object, classes: Tensor) -> Tensor:
        return _logits(output).gather(1, classes.view(-1, 1)).squeeze(1)


class ContrastTarget(Target):
    """``S_c - alpha * mean_{d in D} S_d``, ``D`` the ``references`` classes whose logits are
    closest to ``S_c`` (or the ``compare`` classes given). Finer-CAM (CVPR 2025)."""

    def __init__(self, alpha: float = 0.6, references: int = 3, compare: list[int] | None = None) -> None:
        from camloc.errors import MethodError

        if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 <= alpha < float("inf")):
            raise MethodError(f"contrast target: alpha must be a finite number >= 0, got {alpha!r}")
        if not (isinstance(references, int) and not isinstance(references, bool) and references >= 1):
            raise MethodError(f"contrast target: references must be an integer >= 1, got {references!r}")
        self.alpha, self.references = float(alpha), references
        self.compare = None if compare is None else [int(c) for c in (compare if isinstance(compare, list) else [compare])]

    def reference_classes(self, logits: Tensor, classes: Tensor) -> Tensor:
        """``(B, r)``: the classes each image's score is compared with."""
        if self.compare is not None:
            from camloc.errors import MethodError

            bad = [c for c in self.compare if not 0 <= c < logits.shape[1]]
            if bad or not self.compare:
                raise MethodError(f"contrast target: compare classes {bad or self.compare} are not among the model's "
                                  f"{logits.shape[1]} classes")
            return torch.tensor(self.compare, device=logits.device).expand(logits.shape[0], -1)
        s = logits.detach()
        dist = (s - s.gather(1, classes.view(-1, 1))).abs()
        dist.scatter_(1, classes.view(-1, 1), float("inf"))
        return dist.topk(min(self.references, s.shape[1] - 1), dim=1, largest=False).indices

    def __call__(self, output: object, classes: Tensor) -> Tensor:
        from camloc.errors import MethodError

        logits = _logits(output)
        if logits.shape[1] < 2:
            raise MethodError("contrast target: the model has one class, nothing to contrast with")
        refs = self.reference_classes(logits, classes)
        return logits.gather(1, classes.view(-1, 1)).squeeze(1) - self.alpha * logits.gather(1, refs).mean(dim=1)


class ProbeTarget(Target):
    """``probe(output)[:, c]``: the scores of a probe (any module or function) on the model's output."""

    uses_logits = False

    def __init__(self, probe) -> None:
        self.probe = probe

    def __call__(self, output: object, classes: Tensor) -> Tensor:
        return _logits(self.probe(output)).gather(1, classes.view(-1, 1)).squeeze(1)


class SegmentationTarget(Target):
    """``sum_{(y, x) in R_c} out[c, y, x]``: the class's per-pixel logits summed over its region
    ``R_c`` (the pixels predicted as ``c``, or ``mask`` (H, W) / (B, H, W) when given). Reads
    ``output["out"]`` (torchvision's FCN/DeepLab) or an output tensor ``(B, C, H, W)``."""

    uses_logits = False

    def __init__(self, mask: Tensor | None = None) -> None:
        self.mask = mask

    def __call__(self, output: object, classes: Tensor) -> Tensor:
        out = output["out"] if isinstance(output, dict) else _logits(output)
        per_class = out.gather(1, classes.view(-1, 1, 1, 1).expand(-1, 1, *out.shape[-2:])).squeeze(1)
        if self.mask is None:
            region = (out.detach().argmax(dim=1) == classes.view(-1, 1, 1)).to(out.dtype)
        else:
            region = torch.as_tensor(self.mask, dtype=out.dtype, device=out.device).expand_as(per_class)
        return (per_class * region).sum(dim=(-2, -1))


class BoxScoreTarget(Target):
    """A detector's score for a class (torchvision's detection output, a list of dicts with
    ``boxes``, ``labels``, ``scores``): the sum of the scores of the boxes labelled ``c`` whose IoU
    with a given box (``boxes``, one ``[x0, y0, x1, y1]`` per image) exceeds ``iou``; without
    ``boxes``, the best score labelled ``c``. No such box: a score of zero (a zero map)."""

    uses_logits = False

    def __init__(self, boxes: Tensor | None = None, iou: float = 0.5) -> None:
        self.boxes = None if boxes is None else torch.as_tensor(boxes, dtype=torch.float32).view(-1, 4)
        self.iou = float(iou)

    def __call__(self, output: object, classes: Tensor) -> Tensor:
        from torchvision.ops import box_iou

        scores = []
        for i, det in enumerate(output):  # type: ignore[union-attr]
            keep = det["labels"] == classes[i]
            s = det["scores"]
            if self.boxes is not None and keep.any():
                keep &= box_iou(self.boxes[i : i + 1].to(det["boxes"].device), det["boxes"].detach())[0] > self.iou
                scores.append((s * keep.to(s.dtype)).sum())
            elif keep.any():
                scores.append(s[keep].max())
            else:
                scores.append(s.sum() * 0)
        return torch.stack(scores)


def make_target(target: Target | str | None) -> Target:
    """A target, or the default :class:`ClassTarget` for ``None`` / ``"class"``; ``"contrast"``
    gives :class:`ContrastTarget` with its defaults."""
    from camloc.errors import MethodError

    if target is None or target == "class":
        return ClassTarget()
    if target == "contrast":
        return ContrastTarget()
    if isinstance(target, Target):
        return target
    raise MethodError(f"unknown target {str(target)[:40]!r}; expected class, contrast or a camloc.methods.targets.Target")
