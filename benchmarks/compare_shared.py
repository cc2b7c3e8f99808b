"""Shared passes in ``camloc compare``: the time to map one photo with every gradient and
decomposition method, each method's own passes against the passes shared per photo
(:mod:`camloc.methods.shared`), interleaved in the same process.

    python -m benchmarks.compare_shared            # 8 shared val photos, median of 5 after a warm-up
    python -m benchmarks.compare_shared --quick    # a smoke run (what the test runs)

Not a ``bench_*`` module: its figures sit in BENCHMARKS.md's ``bench:compare`` section.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from benchmarks.timing import interleaved, load_average, machine_line, quick

METHODS = ("cam", "gradcam", "xgradcam", "hirescam", "gradcam_elementwise", "layercam", "gradcampp", "eigencam",
           "eigengradcam", "kpcacam")
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ilsvrc-val-227"


def _inputs(net, n: int) -> list[torch.Tensor]:
    from camloc.demo import demo_photo_paths

    ids = DATA / "metadata" / "image_ids.txt"
    paths = [str(DATA / "images" / line.strip()) for line in ids.read_text().splitlines()[:n]] if ids.exists() \
        else list(demo_photo_paths())[:n]
    return [net.preprocess([p]) for p in paths]


def main(quick_run: bool | None = None, photos: int = 8, layer: str | None = None) -> str:
    from camloc.methods import get_method
    from camloc.methods.shared import shared_passes
    from camloc.models.registry import load_model

    quick_run = quick() if quick_run is None else quick_run
    net = load_model("efficientnet_lite0")
    xs = _inputs(net, 2 if quick_run else photos)
    methods = {n: get_method(n) for n in (METHODS[:3] if quick_run else METHODS)}

    def each_alone() -> None:
        for x in xs:
            for m in methods.values():
                m(net, x, [[0]])

    def shared() -> None:
        for x in xs:
            with shared_passes(x):
                for m in methods.values():
                    m(net, x, [[0]])

    machine = machine_line()
    t = interleaved({"alone": each_alone, "shared": shared}, repeats=1 if quick_run else 5, warmup=0 if quick_run else 1)
    end = load_average()
    per = {k: 1000 * v.wall / len(xs) for k, v in t.items()}
    cpu = {k: 1000 * v.cpu / len(xs) for k, v in t.items()}
    return (f"`python -m benchmarks.compare_shared`: {machine}, {end:.1f} at the end; "
            f"embedded EfficientNet-Lite0, {len(xs)} `ilsvrc-val-227` photos at 224², class 0, the {len(methods)} methods "
            f"{', '.join(methods)} on each photo, median of {1 if quick_run else 5} interleaved runs: "
            f"each alone {per['alone']:.0f} ms/photo (CPU {cpu['alone']:.0f} ms), shared passes {per['shared']:.0f} ms/photo "
            f"(CPU {cpu['shared']:.0f} ms): **{per['alone'] / per['shared']:.2f}x** wall, "
            f"{cpu['alone'] / max(cpu['shared'], 1e-9):.2f}x CPU.")


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(main(quick_run="--quick" in sys.argv[1:]))
