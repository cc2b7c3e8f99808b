"""Metrics as evaluators: ``accumulate(...)`` per batch, ``compute() -> dict`` at the end, and a
state of sums that adds up across processes.

- :class:`ClassificationEvaluator` -- top-1 / top-5 classification error.
- :class:`IlsvrcLocEvaluator` -- the paper's top-k localization error and GT-known accuracy.
- :class:`MaxBoxAccEvaluator` -- MaxBoxAcc / MaxBoxAccV2 (CVPR 2020 protocol).
- :class:`PxAPEvaluator` -- pixel average precision for datasets with masks.
"""

from camloc.metrics.base import Evaluator
from camloc.metrics.maxboxacc import MaxBoxAccEvaluator

__all__ = ["Evaluator", "MaxBoxAccEvaluator"]
