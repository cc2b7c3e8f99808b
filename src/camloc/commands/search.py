"""``camloc search``: the CVPR 2020 WSOL benchmark's fair hyperparameter search with Optuna
(see :mod:`camloc.train.search`)."""

from __future__ import annotations

import argparse
import json

NAME = "search"
HELP = "search a WSOL method's hyperparameters fairly (Optuna; MaxBoxAccV2 on K box-labelled images per class)"

EPILOG = """examples:
  camloc search --config fashion.toml --method has --trials 8 --out runs/search-has
  camloc search --config fashion.toml --method has --trials 8 --out runs/search-has   # again: continues
  # several machines, one study: the same command on each, pointed at one database
  camloc search --config cub.toml --method adl --trials 30 --storage postgresql://user@host/wsol --no-final"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", required=True, metavar="FILE.toml", help="the training configuration (TOML)")
    parser.add_argument("--method", required=True, help="cam, has, acol, spg, adl or cutmix")
    parser.add_argument("--trials", type=int, default=10, help="trials to complete in the study (default 10)")
    parser.add_argument("--out", default="runs/search", help="search folder (default runs/search)")
    parser.add_argument("--storage", default="", help="Optuna RDB URL (default sqlite:///OUT/study.db)")
    parser.add_argument("--study", default="", help="study name (default wsol-METHOD)")
    parser.add_argument("--sampler", default="random", help="random (default, the benchmark's) or tpe")
    parser.add_argument("--val-per-class", type=int, default=5, metavar="K",
                        help="box-labelled validation images per class (default 5, the benchmark's for CUB)")
    parser.add_argument("--test-split", default="test", help="split the best configuration is tested on once")
    parser.add_argument("--seed", type=int, default=0, help="sampler and final-run seed")
    parser.add_argument("--heartbeat", type=int, default=30,
                        help="seconds between a trial's heartbeats; 3 missed: killed, retried (default 30)")
    parser.add_argument("--no-final", action="store_true", help="only run trials (a helper machine)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. epochs=5")


def run(args: argparse.Namespace) -> int:
    from camloc.train.search import SearchOptions, search

    opt = SearchOptions(method=args.method, trials=args.trials, out=args.out, storage=args.storage, study=args.study,
                        sampler=args.sampler, val_per_class=args.val_per_class, test_split=args.test_split,
                        seed=args.seed, heartbeat=args.heartbeat, final=not args.no_final)
    result = search(args.config, opt, args.overrides)
    print(json.dumps(result, indent=1))
    return 0
