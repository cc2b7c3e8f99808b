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
    from camloc import defaults

    print(f"camloc demo: {len(paths)} photos from scikit-image, localize's defaults: model {defaults.MODEL} "
          f"(ImageNet, embedded) at shorter side {defaults.SIDE}")
    code = cli_main(["localize", *paths, "--topk", "5", "--out", out, "--overwrite"])  # a demo replaces its last run
    results = os.path.join(out, "results.jsonl")
    if os.path.exists(results):
        print()
        print(top3_table(results))
    print(f"\nOpen {os.path.join(out, 'figures')}/*_cam.png (top-1 map and box) and *_topk.png "
          f"(one panel per predicted class); records in {os.path.join(out, 'results.jsonl')}.")
    return code


def top3_table(results: str) -> str:
    """Each photo's top-3 classes with their calibrated probabilities (what the model hesitated
    between when its top-1 is wrong), and the temperature that calibrated them."""
    from camloc.provenance import read_results
    from camloc.viz import printable

    header, records = read_results(results)
    t = header["temperature"] if header else 1.0
    lines = [f"top-3 per photo (calibrated probabilities, temperature {t:g}; raw logits in {results}):"]
    for r in records:
        if r.get("error") is not None:
            lines.append(f"  {printable(os.path.basename(r['image']))}: {printable(r['error'])}")
            continue
        top = "; ".join(f"{printable(p['label'])} {p['score']:.2f}" for p in r["predictions"][:3])
        lines.append(f"  {printable(os.path.basename(r['image']))}: {top}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
