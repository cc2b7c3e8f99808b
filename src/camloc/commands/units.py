"""``camloc units``: a class's top-weighted feature units and the images each fires on most."""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

NAME = "units"
HELP = "show the class-specific units of a class: its top-weighted feature channels and where they fire"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments
    from camloc.defaults import add_batch_size_argument, add_device_argument

    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs to search")
    p.add_argument("--class", dest="cls", required=True, metavar="C",
                   help="class label (e.g. 'Egyptian cat'), or index written #N (#285); a bare number is a label "
                   "first, an index only when no label is a number")
    add_model_arguments(p, geometry="at its square input")
    p.add_argument("--rank", choices=("weight", "contribution"), default="weight",
                   help="weight: the class's largest weights (default); contribution: the largest mean share "
                   "w*pool(f) of the class score over the given images (one more forward pass)")
    p.add_argument("--units", type=int, default=6, help="units to show, largest weight first (6)")
    p.add_argument("--per-unit", type=int, default=5, help="best images per unit (5)")
    p.add_argument("--threshold", type=float, default=0.2, help="box threshold, fraction of the unit map's max (0.2)")
    add_batch_size_argument(p)
    add_device_argument(p)
    p.add_argument("--out", default="units_out", help="output folder (default units_out/)")


def check(args: argparse.Namespace) -> None:
    from camloc.defaults import check_map_options

    if args.units < 1 or args.per_unit < 1:
        raise ValueError("--units and --per-unit must be at least 1")
    check_map_options(args)


def run(args: argparse.Namespace) -> int:
    import torch

    from camloc.commands._common import load_net
    from camloc.io import atomic_write_json
    from camloc.pipeline.inputs import iter_paths
    from camloc.units import class_index, class_units, contributing_units, unit_hits
    from camloc.viz import printable
    from camloc.viz.grids import units_figure

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    net = load_net(args.model, args.weights, device, probe=args.probe)
    cls = class_index(net, args.cls, "--class")
    label = net.class_names[cls]
    missing: list[str] = []

    def report(line: str) -> None:
        missing.append(line)
        print(f"camloc units: {printable(line)}", file=sys.stderr)

    images = 0

    def counted(paths: Iterator[str]) -> Iterator[str]:
        nonlocal images
        for path in paths:
            images += 1
            yield path

    stream = iter_paths(args.paths, report)
    first = next(stream, None)
    if first is None:
        raise ValueError("no images to search")
    inputs = itertools.chain([first], stream)
    if args.rank == "contribution":
        units, _ = contributing_units(net, cls, inputs, args.units,
                                      batch_size=args.batch_size)  # unreadable images are reported below
        inputs = iter_paths(args.paths)  # the second pass, quietly: missing inputs were reported
    else:
        units = class_units(net, cls, args.units)
    if not units:
        raise ValueError(f"class {label!r} has no unit with a positive {args.rank}")
    skipped = unit_hits(net, counted(inputs), units, per_unit=args.per_unit, batch_size=args.batch_size,
                        threshold=args.threshold)
    for line in skipped:
        print(f"camloc units: skipped {printable(line)}", file=sys.stderr)
    out = Path(args.out)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or f"class_{cls}"
    figure = out / f"units_{stem}.png"
    atomic_write_json(out / "units.json", {"model": net.name, "class_index": cls, "label": label,
                                           "threshold": args.threshold, "rank": args.rank, "images": images,
                                           "skipped": skipped, "units": [u.to_dict() for u in units]})
    units_figure(units, figure, title=f"{net.name}: units of '{label}' (class {cls}) by {args.rank}, best {args.per_unit} "
                 f"of {images} images each")
    print(f"class {cls} '{label}': {len(units)} units by {args.rank}")
    for u in units:
        best = ", ".join(f"{os.path.basename(h.image)} ({h.peak:.2f})" for h in u.hits[:3])
        share = f"  share {u.contribution:.4f}" if u.contribution is not None else ""
        print(f"  unit {u.index:5d}  w = {u.weight:.4f}{share}  {best}")
    print(f"-> {out / 'units.json'}, {figure}")
    return 1 if skipped or missing else 0
