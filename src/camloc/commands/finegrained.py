"""``camloc finegrained``: the paper's fine-grained settings on CUB-200-2011 as it ships, or on any
dataset with ``train`` and ``test`` splits (e.g. ``train/<class>/`` and ``test/<class>/`` folders)."""

from __future__ import annotations

import argparse
import sys

NAME = "finegrained"
HELP = ("fine-grained recognition (CUB-200-2011, or train/ and test/ class folders) with probes on the full "
        "image, the CAM box crop and the ground-truth crop, and the CAM boxes' localization accuracy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_norm_argument, floats_type
    from camloc.defaults import add_batch_size_argument, add_device_argument, model_help
    from camloc.probe import default_cache_dir

    parser.add_argument("--data", required=True, metavar="DIR",
                        help="the CUB_200_2011 folder (holding images.txt) or its parent, or any dataset with "
                        "train and test splits, e.g. train/<class>/ and test/<class>/ folders (no boxes: no "
                        "ground-truth crop or localization figures)")
    parser.add_argument("--backbone", "--model", dest="backbone", default=None, metavar="M",
                        help=f"registered model name or checkpoint file (default: {model_help(False, 'at its square input')})")
    parser.add_argument("--classifier", choices=("svm", "logreg"), default="svm")
    parser.add_argument("--scaling", choices=("global", "channel"), default="global",
                        help="feature scaling before the fit, folded into the weights (default global)")
    parser.add_argument("--C", type=floats_type, default=None, metavar="C1,C2,...",
                        help="regularization values to try (default 0.001,0.01,0.1,1)")
    parser.add_argument("--threshold", type=float, default=0.2,
                        help="CAM box threshold, fraction of the map's maximum (default 0.2)")
    add_norm_argument(parser)
    parser.add_argument("--val-fraction", type=float, default=0.2, metavar="F")
    parser.add_argument("--seed", type=_seeds, default=[0], metavar="S1,S2,...",
                        help="seed of the validation part that chooses C; several seeds run the protocol once "
                        "each and report the mean and the range (default 0)")
    parser.add_argument("--cache", default=default_cache_dir(), metavar="DIR")
    parser.add_argument("--no-cache", action="store_true")
    add_batch_size_argument(parser, 32)
    add_device_argument(parser)
    parser.add_argument("--out", default=None, metavar="FILE.json", help="also write the figures as JSON")


def _seeds(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct integers, got '{text}'")
    return values


def check(args: argparse.Namespace) -> None:
    from camloc.defaults import check_map_options

    check_map_options(args)
    if not 0 < args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")


def run(args: argparse.Namespace) -> int:
    from camloc.commands._common import one_line_warnings

    with one_line_warnings("camloc finegrained"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from camloc.commands._common import open_split
    from camloc.finegrained import finegrained, seeds_table, summarize
    from camloc.io import atomic_write_json
    from camloc.models.registry import load_model
    from camloc.pipeline.distributed import local_device

    train, test = (open_split(args.data, split, "camloc finegrained") for split in ("train", "test"))
    net = load_model(args.backbone, device=local_device(args.device))
    kwargs = {"classifier": args.classifier, "threshold": args.threshold, "val_fraction": args.val_fraction,
              "cache_dir": None if args.no_cache else args.cache, "batch_size": args.batch_size,
              "scaling": args.scaling, "norm": args.norm, "memo": {}}
    if args.C:
        kwargs["Cs"] = args.C
    runs = []
    for seed in args.seed:
        res = finegrained(net, train, test, seed=seed, **kwargs)
        runs.append(res)
        if seed == args.seed[0]:
            for reason in res.skipped:
                print(f"camloc finegrained: skipped {reason}", file=sys.stderr)
        print(f"{net.name} features, {args.classifier}; {res.n_train} training and {res.n_test} test images, "
              f"{len(train.classes)} classes; seed {seed}; C chosen: "
              + ", ".join(f"{k} {v:g}" for k, v in res.C.items()))
        print(res.table())
        if res.top1_localization is not None:
            print(f"top-1 localization (class right and IoU >= 0.5): {100 * res.top1_localization:.1f} %")
    if len(runs) > 1:
        print(f"over seeds {', '.join(map(str, args.seed))}:")
        print(seeds_table(runs))
    if args.out:
        out = runs[0].to_dict() if len(runs) == 1 else {"runs": [r.to_dict() for r in runs], **summarize(runs)}
        out.update({"backbone": net.name, "classifier": args.classifier, "threshold": args.threshold,
                    "norm": args.norm, "data": args.data, "seeds": args.seed})
        atomic_write_json(args.out, out)
        print(f"wrote {args.out}")
    return 0
