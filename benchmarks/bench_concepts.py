"""Concept localization in weakly labeled images: ``camloc experiment concepts``'s report as the BENCHMARKS.md section, its figure
written to docs/concepts_examples.png (the experiment lives in :mod:`camloc.experiments`).

    .venv/bin/python -m benchmarks concepts        # refreshes its section of BENCHMARKS.md
"""

from __future__ import annotations

import os
import sys
import tempfile

QUICK_SIZES = {"n_train": 8, "n_test": 4}  # --quick: the code paths (model, figure, report) on a dozen images
FIGURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs/concepts_examples.png")


def main(argv: list[str] | None = None) -> str:
    from benchmarks.timing import quick, scratch
    from camloc.experiments.common import drive
    from camloc.experiments.scenes import PHOTOS

    if not os.path.exists(os.path.join(PHOTOS, "labels.csv")):
        return "## Concept localization in weakly labeled images\n\nskipped: ../shared/data/imagenet-samples is not there.\n"
    with tempfile.TemporaryDirectory(prefix="camloc-bench-concepts-") as out:
        report = drive("concepts", out, progress="--progress" in (argv or []), figure=str(scratch(FIGURE)),
                       quick=quick(), sizes=QUICK_SIZES if quick() else None)
    return report + "\n![Concept localization in weakly labeled images](docs/concepts_examples.png)\n"


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(main(sys.argv[1:]))
