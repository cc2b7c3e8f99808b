"""The forward pass on CPU: eager PyTorch or ONNX Runtime (the pipeline's two CAM backends).

Batch 16 at 224x224 with the embedded EfficientNet-Lite0: the pipeline's
:class:`~camloc.pipeline.backends.TorchBackend` against :class:`~camloc.pipeline.backends.OnnxBackend`
(the cached graph: uint8 pixels in, features and scores out), timed side by side in one process,
plus the one-time cost of building the graph (export, check) and of loading it from the cache.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from benchmarks.timing import interleaved, machine_line, pick

BATCH, SIZE = 16, 224


def main() -> str:
    import camloc
    from camloc.pipeline.backends import OnnxBackend, TorchBackend

    batch = pick(BATCH, 2)

    net = camloc.load_model("efficientnet_lite0")
    pixels = np.random.default_rng(0).integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        OnnxBackend(net, cache)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        ort = OnnxBackend(net, cache)
        load = time.perf_counter() - t0
    eager = TorchBackend(net)
    f_ref, l_ref = eager(pixels)
    f_ort, l_ort = ort(pixels)
    same = bool((l_ref.topk(5).indices == l_ort.topk(5).indices).all())
    err = float((f_ref - f_ort).abs().max())
    t = interleaved({"torch": lambda: eager(pixels), "ort": lambda: ort(pixels)}, repeats=9, warmup=2)
    speed = t["torch"].wall / t["ort"].wall
    return "\n".join([
        "## The forward pass on CPU: PyTorch or ONNX Runtime",
        "",
        f"EfficientNet-Lite0, batch {batch} at {SIZE}x{SIZE}, uint8 pixels in, features and scores out (the "
        f"maps are one matrix product after either); medians of 9 interleaved repetitions ({machine_line()}). "
        "Command: `.venv/bin/python -m benchmarks backend`.",
        "",
        "| backend | wall ms / batch | CPU ms / batch | images / s |",
        "|---|---:|---:|---:|",
        f"| PyTorch (eager), `--backend torch` | {t['torch'].wall * 1e3:.0f} | {t['torch'].cpu * 1e3:.0f} | "
        f"{batch / t['torch'].wall:.0f} |",
        f"| ONNX Runtime, `--backend onnxruntime` (the `auto` default on CPU) | {t['ort'].wall * 1e3:.0f} | "
        f"{t['ort'].cpu * 1e3:.0f} | {batch / t['ort'].wall:.0f} |",
        "",
        f"ONNX Runtime runs the forward pass {speed:.1f}x faster here, with the same top-5 classes ({same}) and "
        f"features within {err:.1e}. Building its graph once (export, check against PyTorch at two input shapes, "
        f"write to the cache) takes {build:.1f} s; every later run loads it from the cache in {load:.2f} s "
        "(hashing the weights included).",
    ])


if __name__ == "__main__":
    print(main())
