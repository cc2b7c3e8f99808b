"""What an evaluation computes (:class:`EvalOptions`) and what it returns (:class:`EvalResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from camloc.pixels.geometry import Resize


@dataclass
class EvalOptions:
    """What to compute (defaults: the paper's CAM, top-5, the protocol's 0.01 threshold step)."""

    method: str = "cam"
    layer: str | None = None
    method_options: dict[str, Any] = field(default_factory=dict)  # the method's options (camloc.methods.get_method)
    topk: int = 5
    box_threshold: float = 0.2
    threshold_step: float = 0.01
    iou_thresholds: tuple[int, ...] = (30, 50, 70)
    batch_size: int = 16
    resize: Resize = field(default_factory=lambda: Resize("squash"))  # the protocol's geometry
    backend: str = "auto"  # what runs the CAM forward pass (camloc.pipeline.backends)
    workers: int | None = None  # decode threads (None: the pipeline's default)
    isolate: bool = False  # decode in worker processes (a decoder crash costs one image)
    ten_crop: bool = False
    multibox: bool = False
    examples: int = 6
    progress: bool | None = None
    norm: str = "minmax"  # how signed maps are read (camloc.readings.NORMS) for boxes and the protocol
    clamp_negative: bool = False  # CAM maps from the classifier's positive weights only
    faithfulness: bool = False  # deletion/insertion AUC, Average Drop/Increase, pointing game
    faithfulness_steps: int = 16  # K: points K + 1 on the deletion and insertion curves
    faithfulness_substrate: str = "blur"  # what deleted pixels become (camloc.metrics.faithfulness)


@dataclass
class EvalResult:
    """Metrics (a flat dict of numbers), BoxAcc curves for the figure, a few examples, skips."""

    metrics: dict[str, Any]
    thresholds: list[float] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
