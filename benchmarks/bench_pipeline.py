"""The inference pipeline, end to end, as ratios against the model's forward pass alone.

In one run:

- **forward-only**: ONNX Runtime running the embedded EfficientNet-Lite0 (the pipeline's cached
  graph) on batches of 16 random 224x224 images: the rate no pipeline can beat at 224x224; the
  same for localize's default net (EfficientNet-Lite1) at its default side, 288x288;
- **whole command**: ``camloc localize --no-figures --model efficientnet_lite0`` (Lite0 at its
  own side, 224), as a user runs it, on the 500 shared real ImageNet photos (each twice) and on
  96 JPEGs of 12 MP (the shared photos enlarged to 4000x3000); start-up is removed by taking the
  marginal rate between a small and a large run (each the fastest of three runs); the same for
  the next larger aspect size (256), the trade-off of the geometry, and for ``localize``'s
  defaults (no ``--model``: Lite1 at 288);
- **efficiency**: the pipeline in-process against the backend alone on the very batches (same
  input shapes) it formed, so the overhead of decoding, batching, maps and boxes is seen apart
  from the cost of the larger aspect-mode inputs;
- **memory**: peak RSS of ``camloc localize`` on 1,000 and on 20,000 inputs (symbolic links to a
  few small photos, a small net, so the run measures the pipeline and not the model).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "imagenet-samples" / "images"
CAMLOC = [sys.executable, "-m", "camloc.cli"]
BIG = 96  # 12 MP JPEGs: enough that the marginal rate is not lost in start-up noise


def forward_only(net, repeats: int = 5, side: int = 224) -> float:
    """Images/s of the cached ONNX graph alone, batch 16 at ``side`` x ``side``."""
    from camloc.pipeline.backends import OnnxBackend

    backend = OnnxBackend(net)
    x = np.random.default_rng(0).integers(0, 256, (16, side, side, 3), dtype=np.uint8)
    backend(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        backend(x)
        times.append(time.perf_counter() - t0)
    return 16 / statistics.median(times)


def command_seconds(paths: list[str], work: Path, extra: list[str] = ()) -> float:
    folder = work / f"in{len(paths)}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, p in enumerate(paths):
        os.symlink(p, folder / f"{i:06d}{Path(p).suffix}")
    walls = []
    extra = [*extra, *os.environ.get("CAMLOC_BENCH_ARGS", "").split()]  # e.g. "--resize aspect:224"
    for _ in range(3):  # the fastest of three runs: machine noise only ever adds time
        t0 = time.perf_counter()
        done = subprocess.run([*CAMLOC, "localize", str(folder), "--no-figures", "--out", str(work / "out"),
                               "--overwrite", *extra], capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"camloc localize failed: {done.stderr.strip()[-300:]}")
    return min(walls)


def marginal(paths: list[str], small: int, work: Path, extra: list[str] = ()) -> tuple[float, float]:
    """(marginal images/s between ``small`` and all ``paths``, seconds of the full run)."""
    t_small = command_seconds(paths[:small], work, extra)
    t_all = command_seconds(paths, work, extra)
    return (len(paths) - small) / max(t_all - t_small, 1e-9), t_all


def big_jpegs(sources: list[str], n: int, work: Path) -> list[str]:
    import cv2
    from PIL import Image

    out = []
    folder = work / "12mp"
    folder.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sources[:n]):
        a = np.asarray(Image.open(src).convert("RGB"))
        size = (4000, 3000) if a.shape[1] >= a.shape[0] else (3000, 4000)
        path = folder / f"{i:03d}.jpg"
        Image.fromarray(cv2.resize(a, size, interpolation=cv2.INTER_CUBIC)).save(path, quality=90)
        out.append(str(path))
    return out


def efficiency(net, paths: list[str]) -> tuple[float, float, float]:
    """(end-to-end images/s in-process, forward-only images/s on the same batches, ratio)."""
    from camloc.localize import default_resize, iter_localize
    from camloc.pixels.decode import decode
    from camloc.pipeline.run import Pipeline

    resize = default_resize(net)
    list(iter_localize(net, paths[:32], progress=False))  # warm
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_localize(net, paths, progress=False))
    e2e = n / (time.perf_counter() - t0)
    pipe = Pipeline(net, resize=resize, progress=False)
    buckets: dict[tuple, list[np.ndarray]] = {}
    for p in paths:
        d = decode(p, resize, net.preprocessing.shape)
        buckets.setdefault(d.pixels.shape, []).append(d.pixels)
    # The same batches as the pipeline forms: per shape, in chunks of 16, within chunks of 64 inputs
    # (a slight under-count of the batches it runs, so the ratio is if anything pessimistic).
    batches = []
    for arrays in buckets.values():
        for i in range(0, len(arrays), 16):
            batches.append(np.stack(arrays[i : i + 16]))
    t0 = time.perf_counter()
    for x in batches:
        pipe.backend(x)
    fwd = len(paths) / (time.perf_counter() - t0)
    return e2e, fwd, e2e / fwd


def peak_rss_mb(n: int, work: Path, model: str, photos: list[str]) -> float:
    folder = work / f"mem{n}"
    folder.mkdir(parents=True)
    for i in range(n):  # one flat folder: the walk lists one directory at a time, this one whole
        os.symlink(photos[i % len(photos)], folder / f"{i:06d}.png")
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code, *CAMLOC, "localize", str(folder), "--model", model,
                           "--no-figures", "--backend", "torch", "--resize", "squash", "--topk", "1",
                           "--out", str(work / f"memout{n}")], capture_output=True, text=True)
    shutil.rmtree(folder)
    return int(done.stdout.strip()) / 1024


def memory(work: Path) -> tuple[float, float]:
    import cv2

    import camloc
    from camloc.models.checkpoint import save_checkpoint

    net = camloc.load_model("fashion_gap", num_classes=10)
    model = str(work / "small.pt")
    save_checkpoint(net, model)
    photos = []
    for i in range(4):
        p = work / f"small{i}.png"
        cv2.imwrite(str(p), np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8))
        photos.append(str(p))
    return peak_rss_mb(1000, work, model, photos), peak_rss_mb(20000, work, model, photos)


def main() -> str:
    import camloc
    from benchmarks.timing import machine_line

    if not DATA.is_dir():
        return "## Inference pipeline\n\nskipped: ../shared/data/imagenet-samples is not there."
    from camloc.defaults import MODEL as LOCALIZE_MODEL, SIDE as LOCALIZE_SIDE

    machine = machine_line()
    net = camloc.load_model("efficientnet_lite0")
    default_net = camloc.load_model(LOCALIZE_MODEL)
    photos = sorted(str(p) for p in DATA.iterdir())
    work = Path(tempfile.mkdtemp(prefix="camloc-bench-"))
    lite0 = ["--model", "efficientnet_lite0"]
    try:
        fwd = [forward_only(net)]
        twice = photos + photos  # 1,000 inputs: the marginal rate stands clear of start-up noise
        real_rate, _ = marginal(twice, 100, work, lite0)
        fwd.append(forward_only(net))
        big = big_jpegs(photos, BIG, work)
        big_rate, _ = marginal(big, 12, work, lite0)
        fwd.append(forward_only(net))
        larger = [*lite0, "--resize", "aspect:256"]  # the trade-off: the next larger aspect size
        real_256, _ = marginal(twice, 100, work, larger)
        big_256, _ = marginal(big, 12, work, larger)
        fwd_default = [forward_only(default_net, side=LOCALIZE_SIDE)]
        real_default, _ = marginal(twice, 100, work)
        fwd_default.append(forward_only(default_net, side=LOCALIZE_SIDE))
        big_default, _ = marginal(big, 12, work)
        fwd_default.append(forward_only(default_net, side=LOCALIZE_SIDE))
        e2e, fwd_same, eff = efficiency(net, photos)
        rss1k, rss20k = memory(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    f, fd = statistics.median(fwd), statistics.median(fwd_default)
    print(f"forward {fwd}, real {real_rate:.1f}, 12MP {big_rate:.1f}, e2e {e2e:.1f} / {fwd_same:.1f}, "
          f"default {fwd_default} {real_default:.1f} {big_default:.1f}, rss {rss1k:.0f} {rss20k:.0f}", flush=True)
    return "\n".join([
        "## Inference pipeline: whole command against the forward pass",
        "",
        f"`camloc localize --no-figures --model efficientnet_lite0` (aspect 224, the net's own side; ONNX Runtime "
        f"backend, decode threads), the embedded EfficientNet-Lite0 ({machine}). Command: "
        "`.venv/bin/python -m benchmarks pipeline`.",
        "",
        "| measure | images/s | ratio to forward-only 224x224 |",
        "|---|---:|---:|",
        f"| forward-only, ONNX Runtime, batch 16 at 224x224 (median of 3 in the run: "
        f"{', '.join(f'{v:.0f}' for v in fwd)}) | {f:.0f} | 1.00 |",
        f"| whole command, the 500 real ImageNet photos twice (marginal rate, 100 -> 1,000) | {real_rate:.1f} | "
        f"{real_rate / f:.2f} |",
        f"| whole command, {BIG} JPEGs of 12 MP (marginal rate, 12 -> {BIG}) | {big_rate:.1f} | {big_rate / f:.2f} |",
        "",
        "The trade-off between the geometry's accuracy and speed, same run (top-1 of each size: the geometry "
        "table above):",
        "",
        "| `--resize` | real photos | 96 JPEGs of 12 MP |",
        "|---|---:|---:|",
        f"| aspect:224 (Lite0's own side) | {real_rate / f:.2f} | {big_rate / f:.2f} |",
        f"| aspect:256 | {real_256 / f:.2f} | {big_256 / f:.2f} |",
        "",
        f"`localize`'s defaults (no `--model`: EfficientNet-Lite1 at aspect {LOCALIZE_SIDE}, the section "
        "\"localize's default\"), same run, against that net's own forward pass at "
        f"{LOCALIZE_SIDE}x{LOCALIZE_SIDE} (median of 3: {', '.join(f'{v:.0f}' for v in fwd_default)} images/s):",
        "",
        "| measure | images/s | ratio to its forward-only | ratio to Lite0's forward-only 224x224 |",
        "|---|---:|---:|---:|",
        f"| whole command, the 500 real photos twice | {real_default:.1f} | {real_default / fd:.2f} | "
        f"{real_default / f:.2f} |",
        f"| whole command, {BIG} JPEGs of 12 MP | {big_default:.1f} | {big_default / fd:.2f} | {big_default / f:.2f} |",
        "",
        f"Pipeline efficiency (in-process, the 500 photos): {e2e:.1f} images/s end to end against {fwd_same:.1f} "
        f"for the forward pass alone on the same batches and input shapes: **{eff:.2f}**. The rest of the gap to "
        "the 224x224 rate is the price of the aspect mode's larger inputs (see the geometry table).",
        "",
        f"Memory: peak RSS of `camloc localize` over 1,000 inputs {rss1k:.0f} MB, over 20,000 inputs "
        f"{rss20k:.0f} MB ({rss20k - rss1k:+.0f} MB): inputs are streamed, records written as they are made.",
    ])


if __name__ == "__main__":
    print(main())
