"""Faithfulness in the harness: each image decoded again as the pipeline did (the same network
input), queued with its true class's map by input shape, and scored a batch at a time
(deletion / insertion curves, Average Drop / Increase in Confidence)."""

from __future__ import annotations

import numpy as np
import torch

from camloc.readings import upsample
from camloc.data.base import Sample
from camloc.errors import ImageError
from camloc.evaluate.options import EvalOptions
from camloc.metrics.faithfulness import FaithfulnessEvaluator, confidence_change, perturbation_curves
from camloc.models.net import CamNet


def faithfulness_add(net: CamNet, opt: EvalOptions, ev: FaithfulnessEvaluator,
                      pending: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray, int]]], s: Sample,
                      raw: np.ndarray, skipped: list[str]) -> None:
    """Decode ``s`` again as the pipeline did (same geometry, so the same network input) and queue
    it with its true class's map; a full batch of one input shape is scored at once."""
    from camloc.pixels.decode import decode

    try:
        pixels = decode(s.path, opt.resize, tuple(net.preprocessing.shape), 0, str(s.path), True).pixels
    except ImageError as err:  # the pipeline read it a moment ago; count it, do not stop
        skipped.append(f"faithfulness: {err}")
        return
    bucket = pending.setdefault(pixels.shape, [])
    bucket.append((pixels, upsample(raw, pixels.shape[:2]), int(s.label)))
    if len(bucket) >= max(1, opt.batch_size):
        faithfulness_flush(net, opt, ev, pending.pop(pixels.shape))


def faithfulness_flush(net: CamNet, opt: EvalOptions, ev: FaithfulnessEvaluator,
                        batch: list[tuple[np.ndarray, np.ndarray, int]]) -> None:
    """Score a batch of one input shape: the ``K + 1`` deletion and insertion images and the
    masked image of each, a few forward passes of the net's own scores."""
    from camloc.pipeline.backends import as_input
    from camloc.pipeline.run import gradient_forward

    x = as_input(net, np.stack([b[0] for b in batch]))
    maps = torch.from_numpy(np.stack([b[1] for b in batch]))
    classes = torch.tensor([b[2] for b in batch])

    def scores(v: torch.Tensor) -> torch.Tensor:
        return gradient_forward(net, v)[1]

    chunk = 4 * max(1, opt.batch_size)
    dele, ins = perturbation_curves(scores, x, maps, classes, opt.faithfulness_steps, opt.faithfulness_substrate,
                                    chunk=chunk)
    p, pm = confidence_change(scores, x, maps, classes, chunk=chunk)
    ev.accumulate(dele, ins, p, pm)
