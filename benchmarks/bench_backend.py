"""CAM on CPU with PyTorch or with ONNX Runtime: the same graph (scores, top-5 classes, maps).

Batch 16 at 224x224 with the embedded EfficientNet-Lite0: camloc's one forward pass in eager
PyTorch against the exported CAM graph run by ONNX Runtime, timed side by side in one process,
plus the one-time cost of the ONNX Runtime backend (export, check, session).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.timing import interleaved, machine_line

BATCH, SIZE, TOPK = 16, 224, 5


def main() -> str:
    import camloc
    from camloc.export import onnx_session

    net = camloc.load_model()
    torch.manual_seed(0)
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    t0 = time.perf_counter()
    session = onnx_session(net, TOPK)
    setup = time.perf_counter() - t0
    feed = {"images": x.numpy()}
    _, classes, maps = session.run(None, feed)
    ref = camloc.cam(net, x, topk=TOPK)
    same = bool((classes == ref.classes.numpy()).all())
    err = float(np.abs(maps - ref.maps.numpy()).max())
    t = interleaved({"torch": lambda: camloc.cam(net, x, topk=TOPK), "ort": lambda: session.run(None, feed)},
                    repeats=9, warmup=2)
    speed = t["torch"].wall / t["ort"].wall
    batches = setup / max(t["torch"].wall - t["ort"].wall, 1e-9)
    return "\n".join([
        "## CAM on CPU: PyTorch or ONNX Runtime",
        "",
        f"EfficientNet-Lite0, batch {BATCH} at {SIZE}x{SIZE}, scores + top-{TOPK} classes + maps; medians of 9 "
        f"interleaved repetitions ({machine_line()}). Command: `.venv/bin/python -m benchmarks backend`.",
        "",
        "| backend | wall ms / batch | CPU ms / batch | images / s |",
        "|---|---:|---:|---:|",
        f"| PyTorch (eager), `--backend torch` | {t['torch'].wall * 1e3:.0f} | {t['torch'].cpu * 1e3:.0f} | "
        f"{BATCH / t['torch'].wall:.0f} |",
        f"| ONNX Runtime, `--backend onnxruntime` | {t['ort'].wall * 1e3:.0f} | {t['ort'].cpu * 1e3:.0f} | "
        f"{BATCH / t['ort'].wall:.0f} |",
        "",
        f"ONNX Runtime runs the CAM pass {speed:.1f}x faster here, with the same top-{TOPK} classes ({same}) and maps "
        f"within {err:.1e}. Its one-time setup (export, check against PyTorch, session) takes {setup:.1f} s, "
        f"repaid after about {batches:.0f} batches ({batches * BATCH:.0f} images).",
    ])


if __name__ == "__main__":
    print(main())
