"""``make demo`` (``python -m tools.demo [OUT]``): localize the sample photos bundled with
scikit-image (:func:`camloc.photos.demo_photo_paths`) with the embedded default model."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from camloc.cli import main as cli_main
    from camloc.photos import demo_photo_paths

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
