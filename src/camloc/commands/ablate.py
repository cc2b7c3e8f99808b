"""``camloc ablate``: every localization switch (scales, flip, negative-weight clamping, map readings)
on a split with boxes, in one pass, as one table and one plot."""

from __future__ import annotations

import argparse
import sys

NAME = "ablate"
HELP = ("score every combination of scales, flip, clamping and map reading on a split with boxes (top-1 loc, "
        "GT-known, MaxBoxAcc, MaxBoxAccV2, time per image): one table and a plot")


def _ints(text: str) -> list[int]:
    """``--scales``: distinct integers in [32, MAX_SIDE] (``camloc.pixels.geometry``)."""
    from camloc.pixels.geometry import MAX_SIDE, check_side, parse_side

    try:
        out = [check_side(parse_side(v, "scale"), "scale") for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err}; expected distinct integers in 32..{MAX_SIDE}") from None
    if not out or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected distinct integers in 32..{MAX_SIDE}, got {text!r}")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments
    from camloc.commands._common import add_data_arguments
    from camloc.defaults import add_backend_argument, add_batch_size_argument, add_device_argument, add_workers_argument

    from camloc.commands._method_args import add_method_arguments

    add_model_arguments(p, geometry=None)
    add_data_arguments(p)
    add_method_arguments(p)
    p.add_argument("--scales", type=_ints, default=[256, 320], metavar="S1,S2,...",
                   help="aspect scales (shorter side): each alone and all together (default 256,320)")
    p.add_argument("--all-subsets", action="store_true", help="also every other subset of the scales")
    p.add_argument("--no-flip", action="store_true", help="leave the mirror out of the grid")
    p.add_argument("--no-clamp", action="store_true", help="leave negative-weight clamping out of the grid")
    p.add_argument("--norms", default=None, metavar="R1,R2,...",
                   help="readings (default: minmax,positive,percentile,meanstd)")
    p.add_argument("--threshold", type=float, default=0.2,
                   help="the box threshold of top-1 loc and GT-known, fraction of the read map (0.2)")
    p.add_argument("--out", default="ablation_out", help="output folder (default ablation_out/)")
    add_batch_size_argument(p)
    add_backend_argument(p)
    add_workers_argument(p)
    add_device_argument(p)


def check(args: argparse.Namespace) -> None:
    import os

    from camloc.commands._common import norms_list

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out}: a file stands there; give a folder for the output")
    from camloc.defaults import check_map_options

    check_map_options(args)
    norms_list(args.norms)
    from camloc.commands._method_args import check_method_arguments

    check_method_arguments(args, "ablate")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from camloc.ablation import markdown, run_grid
    from camloc.commands._common import load_net, norms_list
    from camloc.data import open_dataset
    from camloc.io import atomic_write_json, atomic_write_text, output_folder
    from camloc.pipeline.distributed import local_device
    from camloc.viz.plots import ablation_plot

    from camloc.methods import get_method

    net = load_net(args.model, args.weights, local_device(args.device), args.method, probe=args.probe)
    method = None if args.method == "cam" else get_method(args.method, **args.method_options)
    if method is not None and not (args.no_flip and args.no_clamp):
        print(f"camloc ablate: --method {args.method}: the grid leaves out the mirror and clamping (they read CAM's "
              "features and weights)", file=sys.stderr)
    split = open_dataset(args.data, args.split, args.format, image_root=args.image_root, strict=args.strict)
    rows, skipped = run_grid(net, split, scales=args.scales, flips=(False,) if args.no_flip else (False, True),
                             clamps=(False,) if args.no_clamp else (False, True), norms=norms_list(args.norms),
                             box_threshold=args.threshold, all_subsets=args.all_subsets, backend=args.backend,
                             batch_size=args.batch_size, workers=args.workers, method=method)
    out = Path(output_folder(args.out))
    table = markdown(rows)
    atomic_write_text(out / "ablation.md", table)
    atomic_write_json(out / "ablation.json", {"model": net.name, "method": args.method, "data": str(args.data), "split": args.split,
                                              "threshold": args.threshold, "rows": rows, "skipped": skipped})
    ablation_plot(rows, str(out / "ablation.png"))
    print(table)
    if rows[0].get("num_nonfinite_maps"):
        print(f"camloc ablate: {rows[0]['num_nonfinite_maps']} images had a non-finite map (NaN or inf): no box there, "
              "scored as misses", file=sys.stderr)
    for line in skipped[:5]:
        print(f"camloc ablate: skipped {line}", file=sys.stderr)
    print(f"{rows[0]['num_images']} images, {len(rows)} combinations -> {out}/ablation.md, ablation.json, ablation.png")
    return 0
