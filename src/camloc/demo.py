"""``make demo``: localize real photos bundled with scikit-image using the embedded model."""

from __future__ import annotations

import os
import sys

DEMO_PHOTOS = ("chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")


def demo_photo_paths() -> list[str]:
    """Paths of the demo photos inside the installed scikit-image package."""
    from camloc.extras import require

    skimage = require("skimage", "demo", "the demo's photos (bundled with scikit-image)")
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    return [os.path.join(folder, name) for name in DEMO_PHOTOS if os.path.exists(os.path.join(folder, name))]


def main(argv: list[str] | None = None) -> int:
    from camloc.cli import main as cli_main

    out = (argv or sys.argv[1:] or ["out"])[0]
    paths = demo_photo_paths()
    from camloc.localize import LOCALIZE_MODEL, LOCALIZE_SIDE

    print(f"camloc demo: {len(paths)} photos from scikit-image, localize's defaults: model {LOCALIZE_MODEL} "
          f"(ImageNet, embedded) at shorter side {LOCALIZE_SIDE}")
    code = cli_main(["localize", *paths, "--topk", "5", "--out", out])
    print(f"\nOpen {os.path.join(out, 'figures')}/*_cam.png (top-1 map and box) and *_topk.png "
          f"(one panel per predicted class); records in {os.path.join(out, 'results.jsonl')}.")
    return code


if __name__ == "__main__":
    sys.exit(main())
