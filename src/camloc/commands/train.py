"""``camloc train``: train a GAP network from image-level labels (see :mod:`camloc.train`)."""

from __future__ import annotations

import argparse
import json
import os
import sys

NAME = "train"
HELP = "train a GAP network from image-level labels only (one CPU, or many GPUs under torchrun)"

EPILOG = """examples:
  camloc train --config configs/train_fixture.toml
  camloc train --config cub.toml --backbone-weights vgg16.pth epochs=20 lr=0.01 model_args.width=512
  camloc train --resume runs/cub epochs=30          # continue a killed (or finished) run
  torchrun --nproc_per_node=4 -m camloc.cli train --config cub.toml    # DistributedDataParallel"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", metavar="FILE.toml", help="the run's configuration (TOML)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    parser.add_argument("--backbone-weights", metavar="FILE",
                        help="torchvision ImageNet state-dict file for the backbone (sets model_args.backbone_weights)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. epochs=5 lr=0.01 model_args.width=512")


def run(args: argparse.Namespace) -> int:
    from camloc.train import train

    if bool(args.config) == bool(args.resume):
        raise ValueError("give exactly one of --config FILE.toml or --resume RUN_DIR")
    overrides = list(args.overrides)
    if args.backbone_weights:
        overrides.append(f"model_args.backbone_weights={json.dumps(args.backbone_weights)}")
    result = train(args.config, overrides=overrides, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only the first process reports
        return 0
    if result.metrics:
        row = result.metrics[result.best_epoch - 1]
        err = row["val_top1_error"]
        score = f"val top-1 error {err:.2f}%" if err is not None else f"train loss {row['train_loss']:.4f}"
        print(f"{result.run_dir}: {len(result.metrics)} epochs; best {result.best} (epoch {row['epoch']}, {score}); "
              f"last {result.last}; metrics {result.run_dir / 'metrics.csv'}")
    if result.skipped:
        print(f"{result.skipped} unreadable images were skipped", file=sys.stderr)
    return 0
