"""``camloc experiment scenes|concepts|vqa``: the paper's section 4 on generated benchmarks with
known answers (see docs/experiments.md)."""

from __future__ import annotations

import argparse
import os

NAME = "experiment"
HELP = ("run a generated benchmark with known answers: informative objects in scenes, concepts in captioned "
        "images, or what a VQA model looks at; writes NAME.json, NAME.png, NAME.md and prints the tables")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=("scenes", "concepts", "vqa"), help="the experiment")
    p.add_argument("--seed", type=int, default=0, help="generation, probe and fit seed (default 0)")
    p.add_argument("--out", default="out", help="output folder (default out/)")
    p.add_argument("--quick", action="store_true", help="fewer images (a smoke run; numbers are noisier)")
    p.add_argument("--photos", default=None, metavar="DIR",
                   help="object photos: a folder with labels.csv (file,class_index, ImageNet indices) and images/ "
                   "(default: $CAMLOC_IMAGENET_SAMPLES or ../shared/data/imagenet-samples next to the checkout)")
    p.add_argument("--progress", action="store_true", help="show progress bars")


def check(args: argparse.Namespace) -> None:
    """The photo folder, before torch loads (a one-line error naming it when it is missing)."""
    from camloc.experiments.scenes import PHOTOS, check_photos

    check_photos(args.photos or PHOTOS)


def run(args: argparse.Namespace) -> int:
    from camloc.experiments.common import drive

    check(args)
    print(drive(args.name, args.out, seed=args.seed, quick=args.quick, photos=args.photos, progress=args.progress))
    print(f"wrote {os.path.join(args.out, args.name)}.json, .md and .png")
    return 0
