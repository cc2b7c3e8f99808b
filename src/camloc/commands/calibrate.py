"""``camloc calibrate``: choose the box threshold and map reading on a split with boxes, or (``--scores``)
fit the temperature of the scores on labelled photos, and store them in one calibration file beside
the user's own checkpoint or probe (where ``camloc localize`` finds it) or at ``--out``."""

from __future__ import annotations

import argparse
import sys

NAME = "calibrate"
HELP = ("choose localize's box threshold and map reading on a split with boxes (best MaxBoxAcc), or with --scores "
        "the temperature of its scores on labelled photos, and store them")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_data_arguments, add_model_arguments
    from camloc.defaults import (
        SIDE, add_backend_argument, add_batch_size_argument, add_device_argument, add_workers_argument,
    )

    add_model_arguments(p)
    add_data_arguments(p)
    p.add_argument("--scores", action="store_true",
                   help="fit the temperature of the scores (one parameter, least log loss on the photos' labels) "
                   "instead of the box threshold; the file keeps the other part when it holds one for the same "
                   "model and views")
    p.add_argument("--tta", default=None, metavar="SPEC",
                   help="the views localize will run: flip, scales=S1,S2 or flip,scales=S1,S2 (default: its "
                   "default aspect scale, no flip)")
    p.add_argument("--resize", default=None, metavar="aspect[:S]",
                   help=f"the aspect scale localize will run without --tta (default: localize's, aspect:{SIDE} for "
                   "the default net, aspect:224 for a 224 net); with --scores also squash")
    p.add_argument("--clamp-negative", action="store_true",
                   help="calibrate maps made from the classifier's positive weights only")
    p.add_argument("--norms", default=None, metavar="R1,R2,...",
                   help="readings to choose from (default: minmax,positive,percentile,meanstd)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="where to store it (default: beside the probe, checkpoint or weights file; a built-in "
                   "model needs --out, and localize applies that file only when named with --calibration)")
    add_batch_size_argument(p)
    add_backend_argument(p)
    add_workers_argument(p)
    add_device_argument(p)


def _views(args: argparse.Namespace, default_scale: int) -> tuple[tuple[int, ...], bool]:
    from camloc.pixels.geometry import parse_resize
    from camloc.pipeline.views import parse_tta

    if args.tta is not None and args.resize is not None:
        raise ValueError("--tta and --resize: give one (TTA runs the aspect geometry at its own scales)")
    if args.resize is not None:
        r = parse_resize(args.resize, default_side=default_scale)
        if r.mode != "aspect" and not args.scores:
            raise ValueError(f"--resize {args.resize}: calibrate runs the aspect geometry (aspect[:S])")
        return (r.size,), False
    tta = parse_tta(args.tta, default_scale) if args.tta is not None else None
    return (tta.scales, tta.flip) if tta is not None else ((default_scale,), False)


def check(args: argparse.Namespace) -> None:
    from camloc.calibrate import calibration_path
    from camloc.commands._common import norms_list
    from camloc.defaults import check_batch_size, check_workers

    check_workers(args.workers)
    check_batch_size(args.batch_size)
    norms_list(args.norms)
    _views(args, 256)
    if args.out is None and calibration_path(args.model, args.probe, args.weights) is None:
        raise ValueError("give --out FILE.json: a built-in model's calibration is stored only where you name it, and "
                         "localize applies it only with --calibration FILE")


def run(args: argparse.Namespace) -> int:
    from camloc.calibrate import (
        FORMAT, calibrate, calibration_path, fit_scores, labelled_photos, merged_with_stored, model_digest,
        save_calibration, views_of,
    )
    from camloc.commands._common import load_net, norms_list
    from camloc.data import open_dataset
    from camloc.localize import default_resize
    from camloc.pipeline.distributed import local_device
    from camloc.pixels.geometry import parse_resize

    net = load_net(args.model, args.weights, local_device(args.device), probe=args.probe)
    path = args.out or calibration_path(args.model, args.probe, args.weights)
    if args.scores:
        from camloc.tta import parse_tta

        resize = parse_resize(args.resize) if args.resize else default_resize(net)
        tta = parse_tta(args.tta, resize.size) if args.tta is not None else None
        items, skipped = labelled_photos(args.data, args.split, args.format, args.image_root, args.strict,
                                         list(net.class_names))
        rec = {"format": FORMAT, "model": net.name, "weights_sha256": model_digest(net),
               **fit_scores(net, items, resize, tta, args.backend, args.batch_size, args.workers),
               "data": str(args.data), "probe": args.probe}
        rec = merged_with_stored(rec, path, net, views_of(resize, tta))
        save_calibration(rec, path)
        fit = rec["scores_fit"]
        print(f"temperature {rec['temperature']:.4f} on {fit['num_images']} photos (views {rec['views']}): ECE "
              f"{fit['ece_before']:.3f} -> {fit['ece_after']:.3f}, log loss {fit['log_loss_before']:.3f} -> "
              f"{fit['log_loss_after']:.3f} (on the photos fitted on) -> {path}")
        if skipped or fit["num_skipped"]:
            print(f"camloc calibrate: {skipped + fit['num_skipped']} images skipped", file=sys.stderr)
        return 0
    scales, flip = _views(args, default_resize(net).size)
    split = open_dataset(args.data, args.split, args.format, image_root=args.image_root, strict=args.strict)
    rec = calibrate(net, split, scales, flip, args.clamp_negative, norms_list(args.norms), backend=args.backend,
                    batch_size=args.batch_size, workers=args.workers)
    rec.update({"data": str(args.data), "split": args.split, "probe": args.probe})
    rec = merged_with_stored(rec, path, net, rec["views"])
    save_calibration(rec, path)
    for norm, r in rec["by_norm"].items():
        print(f"{norm:<16} MaxBoxAcc {r['MaxBoxAcc']:6.2f}  at threshold {r['threshold']:.2f}")
    print(f"chosen: {rec['norm']} at threshold {rec['threshold']:.2f} (MaxBoxAcc {rec['MaxBoxAcc']:.2f} on "
          f"{rec['num_images']} images, views {rec['views']}) -> {path}")
    if split.skipped or rec["num_skipped"]:
        print(f"camloc calibrate: {len(split.skipped) + rec['num_skipped']} images skipped", file=sys.stderr)
    return 0
