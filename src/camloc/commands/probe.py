"""``camloc probe``: fit (or evaluate) a linear probe on a frozen backbone's GAP features."""

from __future__ import annotations

import argparse
import os
import sys

NAME = "probe"
HELP = "fit a linear classifier on a frozen backbone's GAP features, so that its CAMs localize a new task"


def _common(p: argparse.ArgumentParser) -> None:
    from camloc.defaults import add_batch_size_argument, add_device_argument
    from camloc.probe import default_cache_dir

    p.add_argument("--data", required=True, metavar="DATASET", help="dataset root (CUB-200-2011, ILSVRC, "
                   "published-protocol metadata, or a folder of class sub-folders)")
    p.add_argument("--cache", default=default_cache_dir(), metavar="DIR",
                   help="feature cache folder (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached features")
    add_batch_size_argument(p, 32)
    add_device_argument(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from camloc.commands._common import floats_type
    from camloc.defaults import model_help

    sub = parser.add_subparsers(dest="probe_command", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="extract features once (cached), fit, report accuracy, save the probe",
                         description="Extract the GAP features of a frozen backbone (cached on disk), fit a "
                         "linear SVM (or logistic regression) with C chosen on a validation split, report "
                         "its accuracy and save one probe file.")
    fit.add_argument("--backbone", default=None, metavar="M",
                     help=f"registered model name or checkpoint file (default: {model_help(False, 'at its square input')})")
    _common(fit)
    fit.add_argument("--split", default="train", help="split to fit on (default: train)")
    fit.add_argument("--val-split", default=None, metavar="NAME",
                     help="split to choose C on (default: a stratified part of the training split)")
    fit.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                     help="part of the training split held out to choose C when no --val-split (default 0.2)")
    fit.add_argument("--test-split", default=None, metavar="NAME", help="also report accuracy on this split")
    fit.add_argument("--classifier", choices=("svm", "logreg"), default="svm",
                     help="linear SVM (one-vs-rest, the paper's) or multinomial logistic regression")
    fit.add_argument("--C", type=floats_type, default=None, metavar="C1,C2,...",
                     help="regularization values to try (default 0.001,0.01,0.1,1)")
    fit.add_argument("--scaling", choices=("global", "channel"), default="global",
                     help="center the features and divide by one global scale (default) or standardize each "
                     "channel; folded into the weights either way")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", default="probe.pt", metavar="FILE", help="probe file to write (default probe.pt)")

    ev = sub.add_parser("eval", help="accuracy of a saved probe on a dataset split")
    ev.add_argument("--probe", required=True, metavar="FILE", help="a probe file from 'camloc probe fit'")
    ev.add_argument("--backbone", default=None, metavar="M", help="model (default: the probe's backbone name)")
    _common(ev)
    ev.add_argument("--split", default="test", help="split to evaluate (default: test)")


def _say(text: str) -> None:
    print(text, flush=True)


def check(args: argparse.Namespace) -> None:
    from camloc.defaults import check_batch_size

    check_batch_size(args.batch_size)
    if args.probe_command == "fit" and not 0 < args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")


def run(args: argparse.Namespace) -> int:
    from camloc.commands._common import one_line_warnings

    with one_line_warnings("camloc probe"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from camloc.commands._common import open_split
    from camloc.models.registry import load_model
    from camloc.pipeline.distributed import local_device
    from camloc.probe import evaluate_probe, fit_probe, load_probe, save_probe

    cache = None if args.no_cache else args.cache
    if args.probe_command == "eval":
        probe = load_probe(args.probe)
        net = load_model(args.backbone or probe.backbone, device=local_device(args.device))
        split = open_split(args.data, args.split)
        res = evaluate_probe(net, probe, split, cache_dir=cache, batch_size=args.batch_size)
        for reason in res["skipped"]:
            print(f"camloc probe: skipped {reason}", file=sys.stderr)
        _say(f"{args.split}: accuracy {100 * res['accuracy']:.2f} % on {res['n']} images "
             f"({len(probe.class_names)} classes, skipped {len(res['skipped'])})")
        return 0

    net = load_model(args.backbone, device=local_device(args.device))
    train = open_split(args.data, args.split)
    val = open_split(args.data, args.val_split) if args.val_split else None
    kwargs = {"classifier": args.classifier, "val_fraction": args.val_fraction, "seed": args.seed,
              "cache_dir": cache, "batch_size": args.batch_size, "scaling": args.scaling}
    if args.C:
        kwargs["Cs"] = args.C
    probe = fit_probe(net, train, val, **kwargs)
    info = probe.info
    _say(f"backbone {net.name}: {probe.feature_dim} features; {len(probe.class_names)} classes; "
         f"{info['n_train']} training + {info['n_val']} validation images ({info['validation']})")
    by_c = ", ".join(f"C={c}: {100 * a:.1f} %" for c, a in info["val_accuracy_by_C"].items())
    if by_c:
        _say(f"validation accuracy: {by_c}; chosen C={probe.C:g}")
    elif info["n_val"] == 0 and len(args.C or [0, 1]) > 1:
        print(f"camloc probe: warning: no validation images (a class with one image keeps it for training): "
              f"C={probe.C:g}, the smallest of the path, was not chosen on data; give --val-split, more images "
              "per class or one --C", file=sys.stderr)
    _say(f"{args.classifier} refit on training + validation: training accuracy {100 * info['train_accuracy']:.2f} %")
    if args.test_split:
        res = evaluate_probe(net, probe, open_split(args.data, args.test_split), cache_dir=cache,
                             batch_size=args.batch_size)
        probe.info["test_accuracy"] = res["accuracy"]
        _say(f"{args.test_split}: accuracy {100 * res['accuracy']:.2f} % on {res['n']} images")
    probe.info["data"] = os.path.abspath(args.data)
    save_probe(probe, args.out)
    _say(f"wrote {args.out}")
    if info.get("skipped"):
        print(f"camloc probe: {info['skipped']} unreadable images skipped", file=sys.stderr)
    return 0
