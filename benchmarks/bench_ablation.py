"""Localization switches on real ILSVRC val photos: scales, flip, negative-weight clamping, readings.

``camloc ablate`` on ``../shared/data/ilsvrc-val-dev`` (20 ILSVRC 2012 val photos with their
published boxes, the CVPR 2020 metadata layout), embedded EfficientNet-Lite0, ONNX Runtime
backend: every combination of the aspect scales 256/320/448 (each alone and all three fused),
flip, clamping and the four readings, from one pass (one forward pass per view and batch).
Twenty photos is a smoke set: one photo is 5 points, so differences under 10-15 points are
noise, and nothing here is tuned on it.

    python -m benchmarks ablation
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ilsvrc-val-dev"
FIGURE = ROOT / "docs" / "ablation_ilsvrc_dev.png"
SCALES = (256, 320, 448)


def main() -> str:
    if not (DATA / "metadata" / "image_ids.txt").exists():
        return "## Localization switches on real photos\n\nskipped: ../shared/data/ilsvrc-val-dev is not there."
    import torch

    import camloc
    from camloc.ablation import markdown, run_grid
    from camloc.data import open_dataset
    from benchmarks.timing import pick, scratch
    from camloc.viz.plots import ablation_plot

    net = camloc.load_model("efficientnet_lite0")
    split = open_dataset(DATA / "metadata", "val", image_root=DATA / "images")
    split = type(split)(split.samples[: pick(len(split.samples), 2)], split.classes, split.name)
    scales = pick(SCALES, (256,))
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    rows, skipped = run_grid(net, split, scales=scales, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ablation_plot(rows, str(scratch(FIGURE)))
    base = next(r for r in rows if (r["scales"], r["flip"], r["clamp"], r["norm"]) == ("256", False, False, "minmax"))

    def best(key: str) -> str:
        top = max(r[key] for r in rows)
        hits = [r for r in rows if r[key] == top]
        names = "; ".join(f"{r['scales']}{' flip' if r['flip'] else ''}{' clamp' if r['clamp'] else ''} {r['norm']}"
                          for r in hits[:4])
        return f"{key} {top:.0f} ({len(hits)} combination{'s' if len(hits) > 1 else ''}: {names}{' ...' if len(hits) > 4 else ''})"

    lines = [
        "## Localization switches on real photos (issue 11: scales, flip, clamping, readings)",
        "",
        f"`camloc ablate --data ../shared/data/ilsvrc-val-dev/metadata --image-root ../shared/data/ilsvrc-val-dev/images "
        f"--scales {','.join(map(str, SCALES))}` (here through `python -m benchmarks ablation`): embedded "
        f"EfficientNet-Lite0, {base['num_images']} real ILSVRC 2012 val photos with their published boxes, "
        f"{len(rows)} combinations from one pass. A smoke set: one photo is 5 points, so differences below "
        "10-15 points are within noise; nothing was tuned on it. top1/top5 loc and GT-known: the paper's box "
        "(the reading's 0.2, largest component, IoU >= 0.5); MaxBoxAcc (largest contour, IoU 0.5, best tau "
        "shown) and MaxBoxAccV2 (all contours, IoU 0.3/0.5/0.7): the protocol's 224x224 maps, each view's map "
        "resized bicubically and averaged, then read. ms_per_image: `localize`'s own wall time per image with "
        "those views (top-5, no figures; one forward pass per scale and batch, the mirror in the same pass), "
        "measured in a separate run per view set; box_ms: the reading's fusion and box per image (what "
        "the readings and clamping add).",
        "",
        "Baseline (localize's default before the switches below: aspect 256, no flip, minmax 0.2): "
        f"top-1 loc {base['top1_loc']:.0f}, "
        f"GT-known {base['gt_known']:.0f}, MaxBoxAcc {base['MaxBoxAcc']:.0f}, MaxBoxAccV2 {base['MaxBoxAccV2']:.1f}, "
        f"{base['ms_per_image']:.0f} ms/image. Best: {best('gt_known')}; {best('top1_loc')}; {best('MaxBoxAcc')}; "
        f"{best('MaxBoxAccV2')}.",
        "",
        "Spread over all combinations: " + "; ".join(
            f"{key} {min(r[key] for r in rows):.0f}-{max(r[key] for r in rows):.0f}"
            for key in ("top1_loc", "gt_known", "MaxBoxAcc", "MaxBoxAccV2"))
        + f" (one photo = {100 / base['num_images']:.0f} points): on this set no combination moves any of them "
        f"by more than {_photos(rows, base)} photos from the baseline, either way, and the issue's goal (GT-known >= 70, top-1 loc "
        ">= 55 with localize's defaults) needs a larger evaluation set to judge; nothing is chosen on this set "
        "alone (localize's default reading is chosen across four sets in the next section).",
        "",
        "Cost of the views relative to the baseline, from the same run (ratios move less with the load than "
        "the milliseconds): " + "; ".join(
            f"{r['scales']}{' flip' if r['flip'] else ''} {r['ms_per_image'] / base['ms_per_image']:.1f}x"
            for r in rows if r["clamp"] is False and r["norm"] == "minmax") + ".",
        "",
        markdown(rows),
        f"![ablation](docs/{FIGURE.name})",
        "",
        f"Time on {platform.machine()}, {os.cpu_count()} cores shared with other work (load average {load:.1f} at "
        f"start), torch {torch.__version__}: {wall:.0f} s wall / {cpu:.0f} s CPU for the whole grid; the ms/image "
        "column is wall time and moves with the machine's load (another engineer's jobs ran on the same 2 cores). "
        "Skipped images: "
        f"{len(skipped)}.",
    ]
    return "\n".join(lines)


def _photos(rows: list[dict], base: dict) -> int:
    """The largest change from the baseline over the four metrics, in photos (rounded)."""
    keys = ("top1_loc", "gt_known", "MaxBoxAcc")
    return round(max(abs(r[k] - base[k]) for r in rows for k in keys) * base["num_images"] / 100)


if __name__ == "__main__":
    print(main())
