"""``camloc localize``: top-k classes, maps and boxes for images, in one forward pass per batch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

NAME = "localize"
HELP = "classify images and localize each top-k class with its CAM box"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments, add_norm_argument

    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    add_model_arguments(p)
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--threshold", type=float, default=0.2, help="box threshold, fraction of the map max (0.2)")
    add_norm_argument(p)
    p.add_argument("--out", default="out", help="output folder (default out/)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (16)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.add_argument("--method", default="cam", choices=("cam", "gradcam", "gradcampp", "backprop"),
                   help="map method: cam (one forward pass, default) or a gradient baseline; gradient "
                   "methods also run torchvision nets whose head CAM refuses (VGG, MobileNetV3, ...)")
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                   help="what runs the CAM pass: torch (default) or onnxruntime (CPU, several times faster "
                   "there; CAM only; the graph is checked against camloc's maps first)")
    p.add_argument("--all-boxes", action="store_true", help="also list every component's box")
    p.add_argument("--no-figures", action="store_true", help="write results.jsonl only")


def _figure_stem(path: str, used: set[str], max_bytes: int = 200) -> str:
    """A figure file stem for ``path``, unique in ``used``: control characters become ``_`` and the
    stem is cut to ``max_bytes`` of UTF-8, so ``<stem>_<n>_topk.png`` stays under the usual
    255-byte limit on a file name."""
    stem = "".join(c if c.isprintable() else "_" for c in Path(path).stem)
    stem = stem.encode("utf-8")[:max_bytes].decode("utf-8", "ignore") or "image"
    name, n = stem, 2
    while name in used:
        name, n = f"{stem}_{n}", n + 1
    used.add(name)
    return name


def check(args: argparse.Namespace) -> None:
    """``--topk``, ``--threshold`` and ``--batch-size`` out of range: a one-line error before torch loads."""
    from camloc.commands._common import check_map_options

    check_map_options(args)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from camloc.data.images import expand_paths
    from camloc.io import atomic_write_jsonl
    from camloc.localize import iter_localize, normalized_upsampled
    from camloc.commands._common import check_map_options, load_net
    from camloc.methods import get_method
    from camloc.viz import overlay_figure, save_png, topk_figure

    check_map_options(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    net = load_net(args.model, args.weights, device, args.method)
    method = None if args.method == "cam" else get_method(args.method)
    if args.probe:
        from camloc.probe import attach_probe

        net = attach_probe(net, args.probe)
    paths, missing = expand_paths(args.paths)
    for line in missing:
        print(f"camloc localize: {line}", file=sys.stderr)
    out = Path(args.out)
    figures = out / "figures"
    records, used = [], set()
    for item in iter_localize(net, paths, topk=args.topk, threshold=args.threshold,
                              batch_size=args.batch_size, progress=len(paths) > 1, method=method,
                              norm=args.norm, backend=args.backend):
        rec = item.record
        records.append(rec)
        if rec["error"] is not None:
            tqdm.write(f"camloc localize: {rec['error']}", file=sys.stderr)
            continue
        if args.no_figures:
            continue
        stem = _figure_stem(rec["image"], used)
        rgb = np.asarray(item.image)
        maps01 = normalized_upsampled(item.maps, item.image.size, args.norm)
        preds = rec["predictions"]
        top = preds[0]
        save_png(figures / f"{stem}_cam.png",
                 overlay_figure(rgb, maps01[0], top["box"], f"{top['label']} {top['score']:.2f}"))
        topk_figure(rgb, maps01, [p["box"] for p in preds],
                    [f"{p['rank']}. {p['label'][:22]} ({p['score']:.2f})" for p in preds],
                    figures / f"{stem}_topk.png", title=os.path.basename(rec["image"]))
    atomic_write_jsonl(out / "results.jsonl", records)
    _summary(records, out, args.no_figures)
    failed = sum(r["error"] is not None for r in records) + len(missing)
    if not records:
        print("camloc localize: error: no images to process", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _summary(records: list[dict], out: Path, no_figures: bool) -> None:
    ok = [r for r in records if r["error"] is None]
    rows = ok[:20]
    if rows:
        width = min(40, max(len(os.path.basename(r["image"])) for r in rows))
        print(f"{'image':<{width}}  {'top-1 class':<28} {'prob':>5}  box [x0, y0, x1, y1]")
        for r in rows:
            p = r["predictions"][0]
            print(f"{os.path.basename(r['image'])[:width]:<{width}}  {p['label'][:28]:<28} {p['score']:5.2f}  {p['box']}")
        if len(ok) > len(rows):
            print(f"... and {len(ok) - len(rows)} more")
    failed = len(records) - len(ok)
    print(f"{len(ok)} localized, {failed} failed -> {out / 'results.jsonl'}"
          + ("" if no_figures or not ok else f"; figures in {out / 'figures'}/"))
