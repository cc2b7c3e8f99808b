"""``camloc calibrate``: choose the box threshold and map reading on a split with boxes and store them
beside the model (or probe), where ``camloc localize`` finds them."""

from __future__ import annotations

import argparse
import sys

NAME = "calibrate"
HELP = "choose localize's box threshold and map reading on a split with boxes (best MaxBoxAcc) and store them"


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data``, ``--split``, ``--format``, ``--image-root``, ``--strict`` (as ``evaluate`` reads them)."""
    p.add_argument("--data", required=True, help="dataset root with boxes (WSOL metadata, CUB, ILSVRC)")
    p.add_argument("--split", default="val", help="split to use (default val)")
    p.add_argument("--format", default="auto", help="dataset format (default: detect)")
    p.add_argument("--image-root", default=None, help="WSOL metadata only: folder the image ids are relative to")
    p.add_argument("--strict", action="store_true", help="stop at the first bad metadata line instead of skipping")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import LOCALIZER_HELP, add_model_arguments

    add_model_arguments(p, default=LOCALIZER_HELP)
    add_data_arguments(p)
    p.add_argument("--tta", default=None, metavar="SPEC",
                   help="the views localize will run: flip, scales=S1,S2 or flip,scales=S1,S2 (default: its "
                   "default aspect scale, no flip)")
    p.add_argument("--resize", default=None, metavar="aspect[:S]",
                   help="the aspect scale localize will run without --tta (default aspect:224 for a 224 net)")
    p.add_argument("--clamp-negative", action="store_true",
                   help="calibrate maps made from the classifier's positive weights only")
    p.add_argument("--norms", default=None, metavar="R1,R2,...",
                   help="readings to choose from (default: minmax,positive,percentile,meanstd)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="where to store it (default: beside the probe, checkpoint or weights file, else the cache)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (16)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"))
    p.add_argument("--workers", type=int, default=None, help="decode threads")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if present)")


def _norms(text: str | None) -> tuple[str, ...]:
    from camloc.readings import NORMS, check_norm

    if text is None:
        return NORMS
    out = tuple(n.strip() for n in text.split(",") if n.strip())
    if not out:
        raise ValueError("--norms: give at least one reading")
    for n in out:
        check_norm(n)
    return out


def _views(args: argparse.Namespace, default_scale: int) -> tuple[tuple[int, ...], bool]:
    from camloc.pipeline.geometry import parse_resize
    from camloc.pipeline.views import parse_tta

    if args.tta is not None and args.resize is not None:
        raise ValueError("--tta and --resize: give one (TTA runs the aspect geometry at its own scales)")
    if args.resize is not None:
        r = parse_resize(args.resize)
        if r.mode != "aspect":
            raise ValueError(f"--resize {args.resize}: calibrate runs the aspect geometry (aspect[:S])")
        return (r.size,), False
    tta = parse_tta(args.tta, default_scale) if args.tta is not None else None
    return (tta.scales, tta.flip) if tta is not None else ((default_scale,), False)


def check(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    _norms(args.norms)
    _views(args, 256)


def run(args: argparse.Namespace) -> int:
    from camloc.calibrate import calibrate, calibration_path, save_calibration
    from camloc.commands._common import load_net
    from camloc.data import open_dataset
    from camloc.localize import default_resize, localizer
    from camloc.pipeline.distributed import local_device

    model, geometry = localizer(args.model, args.probe, args.weights)  # what localize runs when nothing is named
    net = load_net(model, args.weights, local_device(args.device), probe=args.probe)
    scales, flip = _views(args, (geometry or default_resize(net)).size)
    split = open_dataset(args.data, args.split, args.format, image_root=args.image_root, strict=args.strict)
    rec = calibrate(net, split, scales, flip, args.clamp_negative, _norms(args.norms), backend=args.backend,
                    batch_size=args.batch_size, workers=args.workers)
    rec.update({"data": str(args.data), "split": args.split, "probe": args.probe})
    path = args.out or calibration_path(args.model, args.probe, args.weights, net.name)
    save_calibration(rec, path)
    for norm, r in rec["by_norm"].items():
        print(f"{norm:<16} MaxBoxAcc {r['MaxBoxAcc']:6.2f}  at threshold {r['threshold']:.2f}")
    print(f"chosen: {rec['norm']} at threshold {rec['threshold']:.2f} (MaxBoxAcc {rec['MaxBoxAcc']:.2f} on "
          f"{rec['num_images']} images, views {rec['views']}) -> {path}")
    if split.skipped or rec["num_skipped"]:
        print(f"camloc calibrate: {len(split.skipped) + rec['num_skipped']} images skipped", file=sys.stderr)
    return 0
