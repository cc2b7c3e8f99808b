"""What the probe modules share: formats, the classifier kinds, the cache folder (no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

PROBE_FORMAT = "camloc-probe/1"
CACHE_FORMAT = "camloc-features/1"
DEFAULT_CS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
Classifier = Literal["svm", "logreg"]
Scaling = Literal["global", "channel"]
Box = Sequence[int]


def default_cache_dir() -> str:
    """``$CAMLOC_CACHE/features`` if set, else ``~/.cache/camloc/features``."""
    root = os.environ.get("CAMLOC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "camloc")
    return os.path.join(root, "features")
