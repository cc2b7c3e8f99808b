"""``camloc sanity``: the model parameter randomisation test of a map method (cascading from the
top), the rank correlation of its maps with the originals, and a flag for maps that barely change."""

from __future__ import annotations

import argparse

from camloc.errors import one_line

NAME = "sanity"
HELP = ("model parameter randomisation test (Adebayo et al. 2018) of map methods: randomise the classifier, "
        "then the top blocks (cascading), and report the rank correlation of the maps with the originals")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments
    from camloc.defaults import add_device_argument

    add_model_arguments(p, probe=False)
    p.add_argument("--method", default="all", help="a registry method, a comma list, or all (default)")
    p.add_argument("--method-option", action="append", default=None, metavar="KEY=VALUE",
                   help="an option of the method(s), e.g. n=8 (repeatable; a method that lacks it refuses)")
    p.add_argument("--data", default=None, help="a dataset root (WSOL metadata, CUB, ILSVRC) to take images from")
    p.add_argument("--split", default="val", help="split of --data (default val)")
    p.add_argument("--image-root", default=None, help="WSOL metadata only: folder the image ids are relative to")
    p.add_argument("images", nargs="*", help="image files (instead of, or beside, --data)")
    p.add_argument("--limit", type=int, default=8, help="images used (default 8: the first of the split)")
    p.add_argument("--depth", type=int, default=3,
                   help="cascade steps: the classifier, then this many - 1 top blocks (default 3; 0: every block)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--flag-above", type=float, default=0.5,
                   help="flag a method whose mean absolute correlation after the top block is random stays above this (0.5)")
    p.add_argument("--out", default=None, help="write sanity.md and sanity.json to this folder")
    add_device_argument(p)


def check(args: argparse.Namespace) -> None:
    from camloc.commands._method_args import method_list
    from camloc.method_names import parse_method_options

    method_list(args.method)
    parse_method_options(args.method_option)
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if args.depth < 0:
        raise ValueError(f"--depth must be >= 0, got {args.depth}")
    if not args.data and not args.images:
        raise ValueError("give image files or --data DIR")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from camloc.commands._common import load_net
    from camloc.commands._method_args import method_list
    from camloc.io import atomic_write_json, atomic_write_text
    from camloc.method_names import parse_method_options
    from camloc.methods import get_method
    from camloc.pipeline.distributed import local_device
    from camloc.sanity import sanity

    names = method_list(args.method)
    options = parse_method_options(args.method_option)
    net = load_net(args.model, args.weights, local_device(args.device), method="gradcam")
    paths = list(args.images)
    if args.data:
        from camloc.data import open_dataset

        paths += [s.path for s in open_dataset(args.data, args.split, image_root=args.image_root).samples]
    paths = paths[: args.limit]
    x = net.preprocess(paths).to(net.device)
    results, failed = [], 0
    for name in names:
        try:
            method = get_method(name, **options) if options else get_method(name)
            r = sanity(net, method, x, depth=args.depth or None, seed=args.seed, flag_above=args.flag_above)
        except (ValueError, RuntimeError) as err:  # a method that cannot apply to this net says why
            print(f"camloc sanity: {name}: {one_line(err)}")
            failed += 1
            continue
        results.append(r)
        print(r.markdown() + "\n", flush=True)
    summary = ["| method | r after classifier | r after top block | abs r after top block | flagged |",
               "|---|---:|---:|---:|---|"]
    for r in results:
        summary.append(f"| {r.method} | {r.steps[0]['mean']:.3f} | {r.top_block_correlation:.3f} | "
                       f"{r.top_block_abs_correlation:.3f} | {'yes' if r.flagged else 'no'} |")
    print("\n".join(summary))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "sanity.md", "\n\n".join([r.markdown() for r in results] + ["\n".join(summary)]) + "\n")
        atomic_write_json(out / "sanity.json", {"model": net.name, "images": [str(p) for p in paths],
                                                "results": [r.to_dict() for r in results]})
    return 1 if failed and not results else 0
