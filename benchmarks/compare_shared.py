"""Shared passes in ``camloc compare``: the time to map one photo with every gradient and
decomposition method, each method's own passes against the passes shared per photo
(:mod:`camloc.methods.shared`), interleaved in the same process.

    python -m benchmarks.compare_shared            # 8 shared val photos, median of 5 after a warm-up
    python -m benchmarks.compare_shared --quick    # a smoke run (what the test runs)
    python -m benchmarks.compare_shared --backends # compare's --backend: PyTorch against ONNX Runtime, by halves

Not a ``bench_*`` module: its figures sit in BENCHMARKS.md's ``bench:compare`` section.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from benchmarks.timing import interleaved, load_average, machine_line, paired, quick

METHODS = ("cam", "gradcam", "xgradcam", "hirescam", "gradcam_elementwise", "layercam", "gradcampp", "eigencam",
           "eigengradcam", "kpcacam")
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ilsvrc-val-227"


def _inputs(net, n: int) -> list[torch.Tensor]:
    from camloc.photos import demo_photo_paths

    ids = DATA / "metadata" / "image_ids.txt"
    paths = [str(DATA / "images" / line.strip()) for line in ids.read_text().splitlines()[:n]] if ids.exists() \
        else list(demo_photo_paths())[:n]
    return [net.preprocess([p]) for p in paths]


LAYERED = ("gradcam", "xgradcam", "hirescam", "gradcam_elementwise", "layercam", "gradcampp", "eigencam",
           "eigengradcam", "kpcacam")


def _measure(net, xs: list[torch.Tensor], methods: dict, quick_run: bool) -> tuple[float, float, float, float]:
    from camloc.methods.shared import shared_passes

    def each_alone() -> None:
        for x in xs:
            for m in methods.values():
                m(net, x, [[0]])

    def shared() -> None:
        for x in xs:
            with shared_passes(x):
                for m in methods.values():
                    m(net, x, [[0]])

    t = interleaved({"alone": each_alone, "shared": shared}, repeats=1 if quick_run else 5, warmup=0 if quick_run else 1)
    n = len(xs)
    return 1000 * t["alone"].wall / n, 1000 * t["shared"].wall / n, 1000 * t["alone"].cpu / n, 1000 * t["shared"].cpu / n


def main(quick_run: bool | None = None, photos: int = 8) -> str:
    from camloc.methods import get_method
    from camloc.models.registry import load_model

    quick_run = quick() if quick_run is None else quick_run
    net = load_model("efficientnet_lite0")
    xs = _inputs(net, 1 if quick_run else photos)
    machine = machine_line()
    lines = []
    for label, layer, names in (("the default layer (the closed form, no backward)", None, METHODS),
                                ("layer `_blocks.15` (autograd: one forward + one backward shared)", "_blocks.15", LAYERED)):
        names = names[:2] if quick_run else names
        methods = {n: get_method(n, **({} if layer is None else {"layer": layer})) for n in names}
        a, s, ca, cs = _measure(net, xs, methods, quick_run)
        lines.append(f"- {label}, the {len(methods)} methods {', '.join(methods)}: each alone {a:.0f} ms/photo "
                     f"(CPU {ca:.0f} ms), shared {s:.0f} ms/photo (CPU {cs:.0f} ms): **{a / s:.2f}x** wall, "
                     f"{ca / max(cs, 1e-9):.2f}x CPU")
    return (f"`python -m benchmarks.compare_shared`: {machine}, {load_average():.1f} at the end; embedded "
            f"EfficientNet-Lite0, {len(xs)} `ilsvrc-val-227` photos at 224², class 0, every method on each photo, median "
            f"of {1 if quick_run else 5} interleaved runs after a warm-up:\n" + "\n".join(lines))


TABLE = ("cam", "gradcam", "gradcampp", "xgradcam", "layercam", "finercam", "ablationcam", "eigencam", "random", "center")
"""The methods of the ``bench:compare`` tables on real photos."""


def backends(photos: int = 32, names: tuple[str, ...] = TABLE, steps: int = 8) -> str:
    """``camloc compare``'s ``--backend`` (the default choice): the seconds to compare ``names`` on
    one photo (maps, deletion/insertion curves of ``steps + 1`` points, Average Drop/Increase;
    no ROAD or sanity check, which are the same work on both), PyTorch against ONNX Runtime, each
    photo on both interleaved after a warm-up photo that builds the graphs; the first ``photos``
    ``ilsvrc-val-227`` photos in two halves (first / second), the gain the mean paired difference
    with its standard error over the photos. The rows' figures agree to the graphs' tolerance."""
    from camloc.compare import compare
    from camloc.data import open_dataset
    from camloc.methods import get_method
    from camloc.models.registry import load_model

    if not (DATA / "metadata").is_dir():
        return "The shared `ilsvrc-val-227` photos are not here: the backend comparison did not run."
    net = load_model("efficientnet_lite0")
    samples = open_dataset(str(DATA), "metadata", image_root=str(DATA / "images")).samples[:photos + 1]
    methods = {n: get_method(n) for n in names}
    kw = {"steps": steps, "sanity_images": 0, "examples": 0, "road_images": 0, "progress": False}

    def run(sample, backend: str) -> list[dict]:
        return compare(net, [sample], methods, backend=backend, **kw)[0]

    run(samples[0], "onnxruntime")  # builds the graphs
    lines = ["| half | photos | torch s/photo | onnxruntime s/photo | gain s/photo (± s.e.) | torch / onnxruntime | "
             "largest AUC difference |", "|---|---:|---:|---:|---:|---:|---:|"]
    rest = samples[1:]
    for half, part in (("first half", rest[:len(rest) // 2]), ("second half", rest[len(rest) // 2:])):
        pairs, worst = [], 0.0
        for i, sample in enumerate(part):
            rows = {}
            order = ("torch", "onnxruntime") if i % 2 == 0 else ("onnxruntime", "torch")
            seconds = {}
            for backend in order:
                t0 = time.perf_counter()
                rows[backend] = run(sample, backend)
                seconds[backend] = time.perf_counter() - t0
            pairs.append((seconds["torch"], seconds["onnxruntime"]))
            for a, b in zip(rows["torch"], rows["onnxruntime"]):
                for key in ("deletion_auc", "insertion_auc"):
                    if key in a:
                        worst = max(worst, abs(a[key] - b[key]))
        ta, tb, gain, se = paired(pairs)
        lines.append(f"| {half} | {len(part)} | {ta:.2f} | {tb:.2f} | {gain:.2f} ± {se:.2f} | {ta / tb:.2f}x | "
                     f"{worst:.1e} |")
    return "\n".join([f"`python -m benchmarks.compare_shared --backends`: {machine_line()}, {load_average():.1f} at the "
                      f"end; embedded EfficientNet-Lite0 at 224², the methods {', '.join(names)}, curves of {steps + 1} "
                      "points, each photo on both backends interleaved:", "", *lines])


if __name__ == "__main__":
    torch.set_num_threads(1)
    if "--backends" in sys.argv[1:]:
        print(backends(*((2,) if "--quick" in sys.argv[1:] else ())))
    else:
        print(main(quick_run="--quick" in sys.argv[1:]))
