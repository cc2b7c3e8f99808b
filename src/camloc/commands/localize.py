"""``camloc localize``: top-k classes, maps and boxes for images, in one forward pass per batch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


NAME = "localize"
HELP = "classify images and localize each top-k class with its CAM box"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments, add_norm_argument, add_pipeline_arguments
    from camloc.defaults import THRESHOLD, add_batch_size_argument, add_device_argument, add_topk_argument

    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    add_model_arguments(p)
    add_topk_argument(p)
    p.add_argument("--threshold", type=float, default=None,
                   help=f"box threshold, fraction of the read map (default: the calibration's, else {THRESHOLD})")
    add_norm_argument(p, default=None, clamp=True, shown="positive")
    p.add_argument("--tta", default=None, metavar="SPEC",
                   help="test-time augmentation of CAM maps: flip, scales=S1,S2,... or flip,scales=S1,S2 (maps "
                   "of every view fused on the image; one forward pass per view)")
    p.add_argument("--calibration", default=None, metavar="FILE|none",
                   help="box threshold and reading, and the scores' temperature, from this file (camloc "
                   "calibrate); default: the file beside your checkpoint, weights or probe "
                   "(<file>.calibration.json) when there is one (its box part only when neither --threshold nor "
                   "--norm is given), else the temperature shipped for an embedded net; none: raw softmax scores "
                   "and the default box rule")
    p.add_argument("--calibration-force", action="store_true",
                   help="apply a calibration made for another model (weights hash) or other views")
    p.add_argument("--out", default="out", help="output folder (default out/); an earlier run's records there are "
                   "kept: give --resume or --overwrite to use the same folder again")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="skip the inputs OUT/results.jsonl already holds a record of and append the others")
    again.add_argument("--overwrite", action="store_true",
                       help="replace OUT/results.jsonl (the old file stays until the new run completes)")
    p.add_argument("--strict", action="store_true",
                   help="under torchrun, exit 1 when an image failed (default: exit 0, the summary and the error "
                   "records say how many failed; torchrun reads a non-zero exit as a crash)")
    add_batch_size_argument(p)
    add_device_argument(p)
    from camloc.commands._method_args import add_method_arguments

    add_method_arguments(p)
    add_pipeline_arguments(p, "how images meet the net: aspect:S (the whole image, shorter side S, aspect kept; "
                           "default: the default net's side for the default net, else the net's own side, 224 for a "
                           "224 net; aspect:S:N takes the longer side down to a multiple of N, e.g. aspect:224:64: fewer "
                           "shapes and pixels, see BENCHMARKS.md), "
                           "squash (the net's square input, the published protocol's geometry)")
    p.add_argument("--all-boxes", action="store_true", help="also list every component's box")
    p.add_argument("--no-figures", action="store_true", help="write results.jsonl only")


def check(args: argparse.Namespace) -> None:
    """``--topk``, ``--threshold`` and ``--batch-size`` out of range, an earlier run's records in
    ``--out`` without ``--resume`` or ``--overwrite``: a one-line error before torch loads."""
    from camloc.commands._common import check_pipeline_options
    from camloc.defaults import check_map_options

    from camloc.commands._method_args import check_method_arguments

    check_map_options(args)
    check_pipeline_options(args)
    check_method_arguments(args, "localize")
    if args.tta is not None:
        from camloc.pipeline.views import parse_tta

        parse_tta(args.tta)
        if args.resize is not None:
            raise ValueError("--tta and --resize: give one (TTA runs the aspect geometry at its own scales)")
    check_out(args)  # the options' own errors first, then what --out holds


def check_out(args: argparse.Namespace) -> None:
    """Refuse an ``--out`` whose ``results.jsonl`` holds records unless ``--resume`` or
    ``--overwrite`` says what to do with them (a second run must not destroy the first's)."""
    from camloc.pipeline.records import count_records

    if getattr(args, "resume", False) or getattr(args, "overwrite", False):
        return
    path = Path(args.out) / "results.jsonl"
    n = count_records(path)
    if n:
        raise ValueError(f"{path} holds {n} records of an earlier run; give --resume to skip their inputs and "
                         "append, --overwrite to replace them, or another --out")


def _calibration(args: argparse.Namespace, net, views: str, resize, tta, rank: int) -> dict:
    """What the run's boxes and scores are read with: ``threshold``, ``norm``, ``clamp``,
    ``calibrated`` (the box part came from a file), ``temperature``, ``temperature_views`` (what it
    was fitted for) and ``file`` (the calibration file used, or ``None``).

    A calibration applies only when named (``--calibration FILE``) or beside the user's own
    checkpoint, weights or probe file; ``--calibration none`` turns both parts off; otherwise the
    scores take the temperature shipped for an embedded net (:func:`camloc.localize.score_temperature`)."""
    from camloc.calibrate import find_calibration
    from camloc.defaults import THRESHOLD
    from camloc.localize import score_temperature
    from camloc.readings import DEFAULT_NORM
    from camloc.viz import printable

    explicit = args.threshold is not None or args.norm is not None
    out = {"threshold": THRESHOLD if args.threshold is None else args.threshold, "norm": args.norm or DEFAULT_NORM,
           "clamp": bool(args.clamp_negative), "calibrated": False, "temperature": 1.0, "temperature_views": None,
           "file": None}
    if args.calibration == "none":
        return out
    cal, path = find_calibration(net, views, args.model, args.probe, args.weights, args.calibration,
                                 args.calibration_force)
    if cal is None:
        out["temperature"], out["temperature_views"] = score_temperature(net, resize, tta)
        return out
    out["file"] = path
    said = []
    if "threshold" in cal and not (explicit and args.calibration is None):
        if explicit:
            raise ValueError("--calibration with --threshold or --norm: the calibrated threshold belongs to its "
                             "reading; give one or the other")
        out.update(threshold=float(cal["threshold"]), norm=cal["norm"], calibrated=True,
                   clamp=bool(args.clamp_negative or cal.get("clamp_negative", False)))
        said.append(f"threshold {cal['threshold']:g} and reading {cal['norm']}"
                    f"{' (clamped weights)' if cal.get('clamp_negative') else ''}")
    if "temperature" in cal:
        out["temperature"], out["temperature_views"] = float(cal["temperature"]), cal.get("views")
        said.append(f"temperature {cal['temperature']:g}")
    else:
        out["temperature"], out["temperature_views"] = score_temperature(net, resize, tta)
    if rank == 0 and said:
        print(f"camloc localize: {' and '.join(said)} from {printable(str(path))}", file=sys.stderr)
    return out


def run(args: argparse.Namespace) -> int:
    check(args)
    from camloc.pipeline.distributed import init_distributed, local_device

    rank, world = init_distributed()
    return _localize(args, rank, world, local_device(args.device))


def _localize(args: argparse.Namespace, rank: int, world: int, device: str) -> int:
    from tqdm.auto import tqdm

    from camloc.commands._common import load_net, resize_option
    from camloc.calibrate import views_of
    from camloc.localize import LocalizeOptions, RecordFigures, iter_localize
    from camloc.methods import get_method
    from camloc.pipeline.backends import make_backend
    from camloc.pipeline.inputs import iter_paths
    from camloc.pipeline.records import JsonlWriter
    from camloc.pipeline.run import as_jobs, shard
    from camloc.viz import printable

    from camloc.provenance import run_header

    net = load_net(args.model, args.weights, device, args.method, args.probe)
    method = None if args.method == "cam" else get_method(args.method, **args.method_options)
    resize = resize_option(args.resize, net)
    tta = None
    if args.tta is not None:
        from camloc.pipeline.views import parse_tta

        tta = parse_tta(args.tta, resize.size)
    cal = _calibration(args, net, views_of(resize, tta), resize, tta, rank)
    threshold, norm, clamp = cal["threshold"], cal["norm"], cal["clamp"]
    backend = make_backend(net, args.backend)
    header = run_header(net, resize, tta, getattr(backend, "name", "torch"),
                        args.method, norm, threshold, clamp, cal["temperature"], cal["temperature_views"],
                        cal["file"], args.topk)
    missing: list[str] = []

    def report(line: str) -> None:
        missing.append(line)
        if rank == 0:
            print(f"camloc localize: {printable(line)}", file=sys.stderr)

    out = Path(args.out)
    figures = None if args.no_figures else RecordFigures(out / "figures", resume=args.resume)
    paths = iter_paths(args.paths, report)
    done: set[str] = set()
    if args.resume:
        from camloc.pipeline.records import recorded_inputs

        done = recorded_inputs(out / "results.jsonl")
        paths = (p for p in paths if p not in done)
    jobs = shard(as_jobs(paths), rank, world)
    writer = JsonlWriter(out / "results.jsonl", rank, world, header=header,
                         mode="append" if args.resume else "replace" if args.overwrite else "new")
    shown: list[dict] = []
    ok = failed = 0
    complete = False
    try:
        opts = LocalizeOptions(topk=args.topk, threshold=threshold, norm=norm, clamp_negative=clamp, tta=tta,
                               method=method, all_boxes=args.all_boxes, calibrated=cal["calibrated"],
                               temperature=cal["temperature"])
        for item in iter_localize(net, jobs, opts, batch_size=args.batch_size, backend=backend,
                                  resize=None if tta is not None else resize, workers=args.workers,
                                  isolate=args.isolate, display=not args.no_figures,
                                  progress=None if rank == 0 else False):
            rec = item.record
            writer.write(item.index, rec)
            if rec["error"] is not None:
                failed += 1
                tqdm.write(f"camloc localize: {printable(rec['error'])}", file=sys.stderr)
                continue
            ok += 1
            if len(shown) < 20:
                shown.append(rec)
            if figures is not None:
                figures.write(item, norm)
        complete = True
    finally:
        writer.finish_part(complete)
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
            return 1 if args.strict and (failed or missing) else 0
    _summary(shown, ok, failed, out, args.no_figures)
    if done:
        print(f"{len(done)} inputs already recorded in {out / 'results.jsonl'}: skipped", file=sys.stderr)
    if ok + failed == 0:
        if done:
            return 0
        print("camloc localize: error: no images to process", file=sys.stderr)
        return 1
    if world > 1 and not args.strict:  # torchrun reads a non-zero exit as a crash; the summary says what failed
        return 0
    return 1 if failed or missing else 0


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
