"""``camloc reproduce``: the paper's comparisons on the Fashion-MNIST localization benchmark."""

from __future__ import annotations

import argparse
import dataclasses

NAME = "reproduce"
HELP = "reproduce the paper's GAP/GMP and CAM/Backprop comparisons on CPU (Fashion-MNIST benchmark)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reproduce_out", help="output folder (data, nets, results.json, report.md, figures)")
    parser.add_argument("--quick", action="store_true", help="the cluttered regime only, one seed, 3000 training images, 4 epochs (a smoke run of about a minute)")
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--regimes", default=None, help="comma-separated regimes (default clean,cluttered)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--train", type=int, default=None, help="training images per regime")
    parser.add_argument("--test", type=int, default=None, help="test images per regime")
    parser.add_argument("--docs", default=None, help="also write the figures into this folder (e.g. docs)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--report-only", action="store_true",
                        help="only write report.md and the figures again from OUT/results.json and the saved nets")


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"--{what} names none")
    return values


def run(args: argparse.Namespace) -> int:
    import torch

    from camloc.experiments.reproduce import FULL, QUICK, rerender, reproduce

    if args.report_only:
        files = rerender(args.out, docs=args.docs)
        print(", ".join(f"{args.out}/{f}" for f in files))
        return 0

    plan = QUICK if args.quick else FULL
    changes: dict = {}
    if args.seeds is not None:
        changes["seeds"] = _ints(args.seeds, "seeds")
    if args.regimes is not None:
        changes["regimes"] = tuple(r.strip() for r in args.regimes.split(",") if r.strip())
    for key in ("epochs", "train", "test"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise ValueError(f"--{key} must be at least 1, got {value}")
            changes[key] = value
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    plan = dataclasses.replace(plan, **changes)
    reproduce(args.out, plan, docs=args.docs)
    print(f"{args.out}/report.md")
    return 0
