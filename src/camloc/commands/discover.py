"""``camloc discover``: per class, the patterns its CAM regions fall into over a folder of images."""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

NAME = "discover"
HELP = "per class, cluster the regions its CAM is high on into patterns (share, exemplars, labels)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments, add_norm_argument, add_pipeline_arguments
    from camloc.defaults import SIDE, add_batch_size_argument, add_device_argument

    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    add_model_arguments(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--classes", default=None, metavar="C1,C2",
                       help="the classes to analyse: labels of the model's (or the probe's) classes, or indices "
                       "written #N (a bare number is a label first, an index only when no label is a number)")
    which.add_argument("--topk-classes", type=int, default=3, metavar="N",
                       help="without --classes: the N classes most often predicted top-1 (default 3)")
    p.add_argument("--within", type=int, default=1, metavar="K",
                   help="an image counts for a class when the class is among its top-K predictions (default 1; "
                   "0 with --classes: every image)")
    p.add_argument("--patterns", type=int, default=None, metavar="K",
                   help="patterns per class (default: K in 2..5 with the best silhouette)")
    p.add_argument("--exemplars", type=int, default=5, help="crops shown per pattern (default 5)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="box threshold, fraction of the map max (default 0.5: regions of one object, where the "
                   "paper's 0.2 often spans several; see BENCHMARKS.md)")
    add_norm_argument(p)
    p.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    p.add_argument("--out", default="out", help="output folder (default out/): discover.json and figures/")
    add_batch_size_argument(p)
    add_device_argument(p)
    add_pipeline_arguments(p, f"how images meet the net for their maps (default: localize's, aspect:{SIDE} for the "
                           "default net, aspect:224 for a 224 net); "
                           "crops are squashed to the net's input size")


def check(args: argparse.Namespace) -> None:
    """Option errors, one line each, before torch loads."""
    from camloc.commands._common import check_pipeline_options
    from camloc.defaults import check_map_options
    from camloc.extras import need

    need("sklearn", "discover", "camloc discover's clustering")  # before any image is read

    if args.patterns is not None and args.patterns < 1:
        raise ValueError(f"--patterns must be at least 1, got {args.patterns}")
    if args.classes is None and args.topk_classes < 1:
        raise ValueError(f"--topk-classes must be at least 1, got {args.topk_classes}")
    if args.within < 0 or (args.within == 0 and args.classes is None):
        raise ValueError(f"--within must be at least 1 (0 only with --classes), got {args.within}")
    if args.classes is not None and not args.classes.strip(" ,"):
        raise ValueError("--classes: no class given")
    if args.exemplars < 1:
        raise ValueError(f"--exemplars must be at least 1, got {args.exemplars}")
    check_map_options(args)
    check_pipeline_options(args)


def run(args: argparse.Namespace) -> int:
    check(args)
    from camloc.commands._common import load_net, model_for, resize_option
    from camloc.discover import discover, parse_classes
    from camloc.io import atomic_write_json
    from camloc.pipeline.distributed import local_device
    from camloc.pipeline.inputs import iter_paths
    from camloc.viz import printable
    from camloc.viz.grids import class_figure

    missing: list[str] = []

    def report(line: str) -> None:
        missing.append(line)
        print(f"camloc discover: {printable(line)}", file=sys.stderr)

    paths = iter_paths(args.paths, report)
    first = next(paths, None)  # nothing to read: say so before loading the net
    if first is None:
        print("camloc discover: error: no images to process", file=sys.stderr)
        return 1
    net = load_net(model_for(args.model, args.weights, args.probe), args.weights, local_device(args.device))
    head_names = list(net.class_names)
    if args.probe:
        from camloc.probe import attach_probe

        net = attach_probe(net, args.probe)
    from camloc.classes import model_label

    classes = parse_classes(args.classes, net.class_names, model=model_label(net)) if args.classes is not None else None

    results, errors, seen = discover(
        net, itertools.chain([first], paths), classes=classes, topk_classes=args.topk_classes,
        patterns=args.patterns, within=args.within, threshold=args.threshold, norm=args.norm,
        resize=resize_option(args.resize, net) if args.resize else None, batch_size=args.batch_size,
        workers=args.workers, backend=args.backend, exemplars=args.exemplars, seed=args.seed, progress=None,
        head_names=head_names, isolate=args.isolate)
    for line in errors:
        print(f"camloc discover: {printable(line)}", file=sys.stderr)
    if seen == 0:
        print("camloc discover: error: no images to process", file=sys.stderr)
        return 1
    out = Path(args.out)
    records = []
    for n, res in enumerate(results, start=1):
        rec = res.record()
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", res.label).strip("_")[:60] or "class"
        rec["figure"] = f"figures/{n:02d}_{stem}.png"
        class_figure(res, out / rec["figure"])
        records.append(rec)
    atomic_write_json(out / "discover.json", {
        "model": net.name, "probe": args.probe, "num_images": seen, "num_errors": len(errors),
        "errors": errors[:100], "threshold": args.threshold, "norm": args.norm, "within": args.within,
        "classes": records,
    })
    for rec in records:
        print(f"{printable(rec['label'])}: {rec['num_images']} images, {len(rec['patterns'])} patterns")
        for pat in rec["patterns"]:
            names = ", ".join(f"{printable(d['label'])} ({d['count']})" for d in pat["labels"])
            print(f"  {pat['pattern']}. {pat['share'] * 100:5.1f}%  {names}")
    print(f"{seen - len(errors)} images read, {len(errors)} failed -> {out / 'discover.json'}; figures in "
          f"{out / 'figures'}/")
    return 1 if errors or missing else 0
