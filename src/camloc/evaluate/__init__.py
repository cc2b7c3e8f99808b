"""Evaluate a classifier's maps on a dataset: one pass, every metric, flat memory.

For each batch: one forward pass gives the scores and the maps (CAM; or a gradient method),
then the evaluators of :mod:`camloc.metrics` accumulate counts:

- classification top-1 / top-5 error;
- the paper's top-1 / top-5 localization error and GT-known accuracy: the true class's map,
  upsampled to the image, boxed with the paper's rule (20 % of the max, largest component);
  only the true class can be right, so the other top-k classes need no box;
- optionally the paper's multi-box test heuristic (top-1..3 classes, several boxes per map) and
  ten-crop maps;
- MaxBoxAcc (largest contour, IoU 0.5) and MaxBoxAccV2 (all contours, IoU 0.3/0.5/0.7) on the
  protocol's maps: the raw map resized to 224x224 (bicubic), min-max normalized, against the
  ground-truth boxes scaled to 224x224;
- PxAP when the samples carry masks;
- optionally (``faithfulness=True``) deletion / insertion AUC, Average Drop / Increase in
  Confidence of the true class's map (:mod:`camloc.metrics.faithfulness`, on the network input
  decoded again with the same geometry, batched by input shape) and the pointing game on the
  protocol's maps.

Images go through the inference pipeline (:class:`camloc.pipeline.Pipeline`), by default in
the protocol's geometry (``Resize("squash")``: the net's fixed input, 224x224 maps); the
ten-crop maps have their own loop (:func:`ten_crop`). Under ``torchrun`` each process takes
every ``world``-th sample and the evaluators' sums are all-reduced, so the result equals a
single-process run.

The parts: :mod:`~camloc.evaluate.options` (what to compute, what comes back),
:mod:`~camloc.evaluate.inputs` (the samples with their maps), :mod:`~camloc.evaluate.harness`
(the loop; each sample scored by :func:`camloc.scoring.score`),
:mod:`~camloc.evaluate.faithfulness` and :mod:`~camloc.evaluate.readout` (the metrics read out; the
report files are :mod:`camloc.report`'s).
"""

from camloc.evaluate.harness import evaluate
from camloc.evaluate.inputs import ten_crop
from camloc.evaluate.options import EvalOptions, EvalResult

__all__ = ["EvalOptions", "EvalResult", "evaluate", "ten_crop"]
