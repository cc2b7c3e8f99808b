"""The sample photos: real photos bundled with scikit-image (the ``demo`` extra), for the
examples in docstrings and tutorials and for ``make demo``."""

from __future__ import annotations

import os

DEMO_PHOTOS = ("chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")


def demo_photo_paths() -> list[str]:
    """Paths of the sample photos inside the installed scikit-image package (a one-line
    :class:`~camloc.errors.MissingExtraError` without it)."""
    from camloc.extras import require

    skimage = require("skimage", "demo", "the demo's photos (bundled with scikit-image)")
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    return [os.path.join(folder, name) for name in DEMO_PHOTOS if os.path.exists(os.path.join(folder, name))]
