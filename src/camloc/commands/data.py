"""``camloc data fashion-loc``: generate the Fashion-MNIST localization benchmark on disk."""

from __future__ import annotations

import argparse
import dataclasses
import os

NAME = "data"
HELP = "generate datasets (fashion-loc: the Fashion-MNIST localization benchmark)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="DATASET")
    p = sub.add_parser(
        "fashion-loc",
        help="real Fashion-MNIST items placed on a canvas, clean or over clutter, in the CVPR 2020 metadata layout",
        description="Write OUT/<split>/ (PNG canvases + image_ids.txt, class_labels.txt, image_sizes.txt, "
                    "localization.txt, class_names.txt; the masks as masks/*.png listed in masks.txt) and "
                    "OUT/benchmark.json. With --regime both, "
                    "OUT/clean/ and OUT/cluttered/. Train images come from Fashion-MNIST train only, "
                    "val and test from (disjoint halves of) its test split.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--regime", default="both", choices=["clean", "cluttered", "both"])
    p.add_argument("--train", type=int, default=10000, help="training images (default 10000)")
    p.add_argument("--val", type=int, default=1000, help="validation images (default 1000)")
    p.add_argument("--test", type=int, default=1500, help="test images (default 1500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", default=None, help="folder of the Fashion-MNIST IDX files "
                   "(default /usr/share/datasets/fashion-mnist)")
    p.add_argument("--canvas", type=int, default=None, help="canvas side in pixels (default: the regime's)")
    p.add_argument("--item-min", type=int, default=None, help="smallest item (longer side, pixels)")
    p.add_argument("--item-max", type=int, default=None, help="largest item (longer side, pixels)")
    p.add_argument("--clutter", type=int, default=None, help="number of clutter fragments")
    p.add_argument("--no-masks", action="store_true", help="leave out the ground-truth masks (masks.txt, masks/)")
    p.add_argument("--add-masks", action="store_true",
                   help="add the masks to the benchmark(s) already in --out, written without them: each split "
                        "is regenerated from benchmark.json's regime and seed and must equal the stored images")


def run(args: argparse.Namespace) -> int:
    from camloc.experiments.fashion_loc import REGIMES, write_benchmark

    if args.data_command != "fashion-loc":
        raise ValueError("name a dataset to generate: camloc data fashion-loc --out DIR")
    sizes = {"train": args.train, "val": args.val, "test": args.test}
    for name, n in sizes.items():
        if n < 0:
            raise ValueError(f"--{name} must be >= 0, got {n}")
    names = ["clean", "cluttered"] if args.regime == "both" else [args.regime]
    if args.add_masks:
        return _add_masks(args, names)
    changes = {k: v for k, v in (("canvas", args.canvas), ("item_min", args.item_min),
                                  ("item_max", args.item_max), ("clutter", args.clutter)) if v is not None}
    for name in names:
        regime = dataclasses.replace(REGIMES[name], **changes)
        out = os.path.join(args.out, name) if args.regime == "both" else args.out
        info = write_benchmark(out, regime, sizes, seed=args.seed, root=args.source, masks=not args.no_masks)
        counts = ", ".join(f"{k} {v['images']}" for k, v in info["splits"].items())
        print(f"{out}: {name} regime, {counts} images ({regime.canvas}x{regime.canvas})")
    return 0


def _add_masks(args: argparse.Namespace, names: list[str]) -> int:
    from camloc.errors import DataError
    from camloc.experiments.fashion_loc import add_masks

    found = [args.out] if os.path.isfile(os.path.join(args.out, "benchmark.json")) else [
        os.path.join(args.out, n) for n in names if os.path.isfile(os.path.join(args.out, n, "benchmark.json"))]
    if not found:
        raise DataError(f"{args.out}: no benchmark.json there (nor in {'/, '.join(names)}/) to add masks to")
    for folder in found:
        info = add_masks(folder, root=args.source)
        total = sum(v["images"] for v in info["splits"].values())
        print(f"{folder}: masks added to {total} images (all stored images equal the regenerated ones)")
    return 0
