"""``camloc localize``: top-k classes, maps and boxes for images, in one forward pass per batch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


NAME = "localize"
HELP = "classify images and localize each top-k class with its CAM box"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import LOCALIZER_HELP, add_model_arguments, add_norm_argument, add_pipeline_arguments

    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    add_model_arguments(p, default=LOCALIZER_HELP)
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--threshold", type=float, default=None,
                   help="box threshold, fraction of the read map (default: the calibration's, else 0.2)")
    add_norm_argument(p, default=None, clamp=True, shown="positive")
    p.add_argument("--tta", default=None, metavar="SPEC",
                   help="test-time augmentation of CAM maps: flip, scales=S1,S2,... or flip,scales=S1,S2 (maps "
                   "of every view fused on the image; one forward pass per view)")
    p.add_argument("--calibration", default=None, metavar="FILE|none",
                   help="threshold and reading from this file (camloc calibrate); default: the model's or "
                   "probe's calibration when there is one and neither --threshold nor --norm is given")
    p.add_argument("--out", default="out", help="output folder (default out/)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (16)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    from camloc.commands._method_args import add_method_arguments

    add_method_arguments(p)
    add_pipeline_arguments(p, "how images meet the net: aspect:S (the whole image, shorter side S, aspect kept; "
                           "default aspect:288 for the default net, else the net's own side, 224 for a 224 net), "
                           "squash (the net's square input, the published protocol's geometry)")
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
    from camloc.commands._common import check_map_options, check_pipeline_options

    from camloc.commands._method_args import check_method_arguments

    check_map_options(args)
    check_pipeline_options(args)
    check_method_arguments(args, "localize")
    if args.tta is not None:
        from camloc.tta import parse_tta

        parse_tta(args.tta)
        if args.resize is not None:
            raise ValueError("--tta and --resize: give one (TTA runs the aspect geometry at its own scales)")


def _reading(args: argparse.Namespace, net, rank: int) -> tuple[float, str, bool, bool, str | None]:
    """``(threshold, norm, clamp_negative, calibrated, views)``: the options given, else the
    calibration file's (``--calibration``, or the model's when there is one; ``views``: what it
    was calibrated with), else 0.2 and :data:`camloc.readings.DEFAULT_NORM` (positive)."""
    from camloc.calibrate import calibration_path, load_calibration
    from camloc.readings import DEFAULT_NORM
    from camloc.viz import printable

    explicit = args.threshold is not None or args.norm is not None
    if args.calibration == "none" or (explicit and args.calibration is None):
        return (0.2 if args.threshold is None else args.threshold, args.norm or DEFAULT_NORM, args.clamp_negative,
                False, None)
    if explicit:
        raise ValueError("--calibration with --threshold or --norm: the calibrated threshold belongs to its reading; "
                         "give one or the other")
    path = args.calibration or calibration_path(args.model, args.probe, args.weights, net.name)
    if args.calibration is None and not os.path.exists(path):
        return 0.2, DEFAULT_NORM, args.clamp_negative, False, None
    cal = load_calibration(path)
    if rank == 0:
        print(f"camloc localize: threshold {cal['threshold']:g} and reading {cal['norm']}"
              f"{' (clamped weights)' if cal.get('clamp_negative') else ''} from {printable(str(path))}",
              file=sys.stderr)
    clamp = bool(args.clamp_negative or cal.get("clamp_negative", False))
    return float(cal["threshold"]), cal["norm"], clamp, True, cal.get("views")


def run(args: argparse.Namespace) -> int:
    check(args)
    from camloc.pipeline.distributed import init_distributed, local_device

    rank, world = init_distributed()
    return _localize(args, rank, world, local_device(args.device))


def _localize(args: argparse.Namespace, rank: int, world: int, device: str) -> int:
    from tqdm.auto import tqdm

    from camloc.commands._common import load_net
    from camloc.localize import default_resize, iter_localize, localizer
    from camloc.methods import get_method
    from camloc.pipeline.geometry import parse_resize
    from camloc.pipeline.inputs import iter_paths
    from camloc.pipeline.records import JsonlWriter
    from camloc.pipeline.run import as_jobs, shard
    from camloc.viz import printable

    model, geometry = localizer(args.model, args.probe, args.weights)
    net = load_net(model, args.weights, device, args.method, args.probe)
    method = None if args.method == "cam" else get_method(args.method, **args.method_options)
    resize = parse_resize(args.resize) if args.resize else geometry or default_resize(net)
    threshold, norm, clamp, calibrated, views = _reading(args, net, rank)
    tta = None
    if args.tta is not None:
        from camloc.tta import parse_tta

        tta = parse_tta(args.tta, resize.size)
    running = tta.describe() if tta is not None else f"scales={resize.size}" if resize.mode == "aspect" else "squash"
    if views is not None and views != running and rank == 0:
        print(f"camloc localize: note: calibrated with views {views}, running {running}", file=sys.stderr)
    missing: list[str] = []

    def report(line: str) -> None:
        missing.append(line)
        if rank == 0:
            print(f"camloc localize: {printable(line)}", file=sys.stderr)

    out = Path(args.out)
    figures = out / "figures"
    jobs = shard(as_jobs(iter_paths(args.paths, report)), rank, world)
    writer = JsonlWriter(out / "results.jsonl", rank, world)
    shown: list[dict] = []
    ok = failed = 0
    used: set[str] = set()
    try:
        for item in iter_localize(net, jobs, topk=args.topk, threshold=threshold, batch_size=args.batch_size,
                                  progress=None if rank == 0 else False, method=method, norm=norm,
                                  backend=args.backend, resize=None if tta is not None else resize,
                                  workers=args.workers, display=not args.no_figures, isolate=args.isolate, tta=tta,
                                  clamp_negative=clamp, calibrated=calibrated):
            rec = item.record
            writer.write(item.index, rec)
            if rec["error"] is not None:
                failed += 1
                tqdm.write(f"camloc localize: {printable(rec['error'])}", file=sys.stderr)
                continue
            ok += 1
            if len(shown) < 20:
                shown.append(rec)
            if not args.no_figures:
                _figures(item, rec, figures, used, norm)
    finally:
        writer.finish_part()
    if world > 1:
        print(f"rank {rank}/{world}: {ok + failed} images", file=sys.stderr)
        from camloc.pipeline.distributed import barrier
        import torch.distributed as dist

        barrier()
        totals = [None] * world
        dist.all_gather_object(totals, (ok, failed))
        ok, failed = sum(t[0] for t in totals), sum(t[1] for t in totals)
        if rank == 0:
            writer.merge()
        barrier()
        if rank != 0:
            return 1 if failed or missing else 0
    _summary(shown, ok, failed, out, args.no_figures)
    if ok + failed == 0:
        print("camloc localize: error: no images to process", file=sys.stderr)
        return 1
    return 1 if failed or missing else 0


def _figures(item, rec: dict, figures: Path, used: set[str], norm: str) -> None:
    """The top-1 overlay and the top-k panel of one record, drawn on the kept display image."""
    from camloc.localize import normalized_upsampled
    from camloc.viz import overlay_figure, save_png, scale_box, topk_figure

    rgb = item.display
    h, w = rgb.shape[:2]
    s = w / rec["width"]  # the display image is the whole image scaled by one factor

    def scaled(box):
        return scale_box(box, s, w, h)

    stem = _figure_stem(rec["image"], used)
    maps01 = normalized_upsampled(item.maps, (w, h), norm)
    preds = rec["predictions"]
    top = preds[0]
    save_png(figures / f"{stem}_cam.png", overlay_figure(rgb, maps01[0], scaled(top["box"]),
                                                         f"{top['label']} {top['score']:.2f}"))
    topk_figure(rgb, maps01, [scaled(p["box"]) for p in preds],
                [f"{p['rank']}. {p['label'][:22]} ({p['score']:.2f})" for p in preds],
                figures / f"{stem}_topk.png", title=os.path.basename(rec["image"]))


def _summary(shown: list[dict], ok: int, failed: int, out: Path, no_figures: bool) -> None:
    """The table of the first 20 records: one line per image, control characters in file names and
    labels escaped (a newline or an escape sequence in a name must not break the table)."""
    from camloc.viz import printable

    rows = shown[:20]
    if rows:
        names = [printable(os.path.basename(r["image"])) for r in rows]
        width = min(40, max(len(n) for n in names))
        print(f"{'image':<{width}}  {'top-1 class':<28} {'prob':>5}  box [x0, y0, x1, y1]")
        for name, r in zip(names, rows):
            p = r["predictions"][0]
            print(f"{name[:width]:<{width}}  {printable(p['label'])[:28]:<28} {p['score']:5.2f}  {p['box']}")
        if ok > len(rows):
            print(f"... and {ok - len(rows)} more")
    print(f"{ok} localized, {failed} failed -> {out / 'results.jsonl'}"
          + ("" if no_figures or not ok else f"; figures in {out / 'figures'}/"))
