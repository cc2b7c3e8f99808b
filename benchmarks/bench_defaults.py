"""Which net, scale and map stride for ``localize``'s default (issue 11): every candidate within
twice the default's time per image, and a few beyond it for reference, measured side by side.

Per candidate (a registered net, the aspect geometry at shorter side S, with or without the
mirror view):

- on the 20 real ILSVRC 2012 val photos of ``../shared/data/ilsvrc-val-dev`` with their published
  boxes: top-1 loc, top-5 loc and GT-known loc with ``localize``'s own box rule (its default
  reading and threshold, the largest component, on its 512-px box grid), and the mean over the
  photos of the true class's box IoU (best over the photo's boxes), with the standard error of
  its paired difference to the default: the continuous figure moves less with one photo than
  the hit rates do (one photo = 5 points);
- on the 500 real ImageNet photos of ``../shared/data/imagenet-samples``: top-1 classification
  (top-1 loc needs the class right);
- cost: ``localize``'s wall time per image (top-5, no figures) on 160 of those photos, the
  fastest of two interleaved runs, over the default's in the same run.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DEV = SHARED / "ilsvrc-val-dev"
# (model, shorter side, mirror view); the first is localize's default
CANDIDATES = [
    ("efficientnet_lite0", 224, False),
    ("efficientnet_lite0", 224, True),
    ("efficientnet_lite0", 288, False),
    ("efficientnet_lite0", 320, False),
    ("efficientnet_lite0_s16", 224, False),
    ("efficientnet_lite1", 240, False),
    ("efficientnet_lite1", 256, False),  # what localize runs for --model efficientnet_lite1 (its side, to 32)
    ("efficientnet_lite1", 288, False),
    ("efficientnet_lite2", 260, False),
    ("efficientnet_lite1_s16", 240, False),
    ("efficientnet_lite0", 448, False),
    ("efficientnet_lite1", 320, False),
]


def localization(net, split, scale: int, flip: bool) -> dict:
    """Per photo: the true class's box IoU, whether the true class is top-1 / in the top 5."""
    from camloc.boxes import best_iou, box_grid, scale_box, boxes_from_map
    from camloc.localize import BOX_CAP
    from camloc.pipeline.run import Job
    from camloc.readings import DEFAULT_NORM
    from camloc.tta import TTA, fused_logits, fused_maps, iter_views, map_weight

    weight = map_weight(net)
    ious, top1, top5 = [], [], []
    samples = [s for s in split.samples if s.boxes]
    jobs = [Job(s.path, i, s.path, tag=s) for i, s in enumerate(samples)]
    for views in iter_views(net, jobs, TTA((scale,), flip), "auto", 16, None, progress=False):
        if any(v.error is not None for v in views):
            raise RuntimeError(views[0].error)
        s, size = views[0].job.tag, views[0].size
        grid = box_grid(size, BOX_CAP)
        found = boxes_from_map(fused_maps(views, weight, np.array([s.label]), grid)[0], 0.2, norm=DEFAULT_NORM)
        box = scale_box(found[0], grid, size) if found else None
        ious.append(best_iou(box, s.boxes))
        order = np.argsort(-fused_logits(views))
        top1.append(int(order[0]) == s.label)
        top5.append(s.label in order[:5].tolist())
    return {"iou": np.array(ious), "top1": np.array(top1), "top5": np.array(top5)}


def classification(net, items, scale: int, flip: bool) -> float:
    from camloc.tta import TTA, fused_logits, iter_views

    right = n = 0
    for views, (_, label) in zip(iter_views(net, [p for p, _ in items], TTA((scale,), flip), "auto", 16, None,
                                            progress=False), items):
        if views[0].error is None:
            n += 1
            right += int(np.argmax(fused_logits(views)) == label)
    return 100 * right / n


def ms_per_image(net, paths, scale: int, flip: bool) -> float:
    """``localize``'s wall milliseconds per image with this view (the ablation's own timer)."""
    from camloc.ablation import localize_ms

    return localize_ms(net, paths, ((scale,), flip), "auto", 16, None)


def main() -> str:
    import camloc
    from benchmarks.bench_geometry import samples
    from benchmarks.timing import machine_line, pick
    from camloc.data.wsol import read_wsol
    from camloc.readings import DEFAULT_NORM

    if not DEV.is_dir() or not (SHARED / "imagenet-samples").is_dir():
        return "## localize's default: net, scale, map stride\n\nskipped: ../shared/data is not there."
    split = read_wsol(DEV / "metadata", DEV / "images")
    items = samples(SHARED / "imagenet-samples")
    candidates = pick(CANDIDATES, CANDIDATES[:2])
    split.samples, items = split.samples[: pick(len(split.samples), 3)], items[: pick(len(items), 4)]
    nets = {m: camloc.load_model(m) for m in dict.fromkeys(c[0] for c in candidates)}
    rows = []
    for model, scale, flip in candidates:
        loc = localization(nets[model], split, scale, flip)
        cls = classification(nets[model], items, scale, flip)
        rows.append({"model": model, "scale": scale, "flip": flip, "cls": cls, **loc})
        print(model, scale, flip, f"GT-known {loc['iou'].__ge__(0.5).mean():.2f} cls {cls:.1f}", flush=True)
    paths = [p for p, _ in items[:pick(160, 4)]]
    for r in rows:  # warm: each net's graph exported and cached before timing
        ms_per_image(nets[r["model"]], paths[:8], r["scale"], r["flip"])
    for _ in range(pick(2, 1)):
        for r in rows:
            r.setdefault("ms", []).append(ms_per_image(nets[r["model"]], paths, r["scale"], r["flip"]))
    base = rows[0]
    lines = [
        "## localize's default: net, scale, map stride (issue 11)",
        "",
        f"Command: `.venv/bin/python -m benchmarks defaults` ({machine_line()}). `localize`'s box rule for every "
        f"candidate ({DEFAULT_NORM} reading, 0.2, largest component, the 512-px box grid), the true class's map, on "
        f"the {len(base['iou'])} real ILSVRC 2012 val photos of `../shared/data/ilsvrc-val-dev` (one photo = 5 points; "
        "a smoke set, nothing tuned on it). *mean IoU*: the true class's box against the photo's best-matching "
        "box, averaged; *vs default*: its paired difference to the first row (Lite0 at 224, the previous default), with the standard error of that "
        f"difference. *cls*: top-1 on the {len(items)} real photos of `../shared/data/imagenet-samples`. *cost*: "
        "`localize`'s wall time per image (top-5, no figures) on 160 of those photos over the first row's, the "
        "fastest of two interleaved runs. `_s16`: the net's last stage made dense (CAMs at stride 16, the same "
        "weights).",
        "",
        "| net | shorter side | flip | top-1 loc | top-5 loc | GT-known | mean IoU | vs default (SE) | cls % | ms / image | cost |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    b_ms = min(base["ms"])
    for r in rows:
        hit = r["iou"] >= 0.5
        d = r["iou"] - base["iou"]
        se = d.std(ddof=1) / np.sqrt(len(d)) if r is not base else 0.0
        lines.append(
            f"| `{r['model']}` | {r['scale']} | {'yes' if r['flip'] else 'no'} | {100 * (hit & r['top1']).mean():.0f} | "
            f"{100 * (hit & r['top5']).mean():.0f} | {100 * hit.mean():.0f} | {r['iou'].mean():.3f} | "
            f"{d.mean():+.3f} ({se:.3f}) | {r['cls']:.1f} | {min(r['ms']):.1f} | {min(r['ms']) / b_ms:.2f}x |")
    from camloc.defaults import MODEL as LOCALIZE_MODEL, SIDE as LOCALIZE_SIDE

    def figures(r):
        hit = r["iou"] >= 0.5
        return ((hit & r["top1"]).sum(), (hit & r["top5"]).sum(), hit.sum(), r["iou"].mean(), r["cls"])

    within = [r for r in rows[1:] if min(r["ms"]) <= 2 * b_ms
              and all(a >= b for a, b in zip(figures(r), figures(base)))]
    best = max(within, key=lambda r: r["iou"].mean(), default=None)
    chosen = f"`{best['model']}` at {best['scale']}{' with flip' if best['flip'] else ''}" if best else "none"
    listed = ", ".join(f"`{r['model']}` at {r['scale']}" for r in within) or "none"
    lines += ["", f"Within 2x the first row's time and no worse than it on any figure (top-1, top-5 and GT-known loc, "
              f"mean IoU, cls): {listed}; the best mean "
              f"IoU of those: {chosen}. `localize`'s default: `{LOCALIZE_MODEL}` at {LOCALIZE_SIDE}. The goal of "
              "issue 11 (GT-known >= 70, top-1 loc >= 55 on real val photos) is met on these 20 photos only by "
              "rows beyond 2x; one photo is 5 points, so no difference here is beyond noise."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
