"""``camloc evaluate``: classification and localization metrics of a model on a dataset."""

from __future__ import annotations

import argparse
import sys

NAME = "evaluate"
HELP = "evaluate a model's maps on a dataset: classification, the paper's loc error, MaxBoxAcc(V2), PxAP"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments, add_norm_argument, add_pipeline_arguments
    from camloc.defaults import add_batch_size_argument, add_device_argument, add_topk_argument

    add_model_arguments(p, probe=False, geometry="at its square input (squash: the published protocol's "
                        "geometry, not localize's; see --resize)")
    p.add_argument("--data", required=True, help="dataset root (WSOL metadata, CUB, ILSVRC, class folders)")
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument("--format", default="auto", help="dataset format (default: detect)")
    p.add_argument("--image-root", default=None, help="WSOL metadata only: folder the image ids are relative to")
    from camloc.commands._method_args import add_method_arguments

    add_method_arguments(p)
    p.add_argument("--layer", default=None, help="target layer of the gradient methods (dotted module name)")
    add_topk_argument(p, "k of the top-k errors")
    p.add_argument("--threshold", type=float, default=0.2, help="the paper's box threshold (0.2 of the max)")
    add_norm_argument(p, clamp=True)
    p.add_argument("--threshold-step", type=float, default=0.01, help="CAM threshold step of MaxBoxAcc (0.01)")
    p.add_argument("--iou", type=int, nargs="+", default=[30, 50, 70], help="IoU thresholds in %% of MaxBoxAccV2")
    p.add_argument("--ten-crop", action="store_true", help="the paper's ten-crop maps (256x256 resize)")
    p.add_argument("--multibox", action="store_true", help="also the paper's multi-box test heuristic")
    p.add_argument("--faithfulness", action="store_true",
                   help="also deletion/insertion AUC, Average Drop/Increase in Confidence and the pointing game")
    p.add_argument("--faithfulness-steps", type=int, default=16,
                   help="K: deletion/insertion steps, 2(K+1) forward images per photo (default 16)")
    p.add_argument("--faithfulness-substrate", default="blur", choices=["blur", "mean", "zero"],
                   help="what deleted pixels become and insertion starts from (default blur)")
    add_batch_size_argument(p)
    add_pipeline_arguments(p, "how images meet the net: squash (default: the net's square input, the published "
                           "protocol's geometry, 224x224 maps for a 224 net), or aspect[:S] (the whole image, "
                           "shorter side S, aspect kept); not used by --ten-crop")
    add_device_argument(p, "cuda if present; per rank under torchrun")
    p.add_argument("--strict", action="store_true", help="stop at the first bad metadata line instead of skipping")
    p.add_argument("--out", default="eval_out", help="output folder (default eval_out/)")
    p.add_argument("--no-figures", action="store_true", help="write metrics.json and metrics.csv only")


def check(args: argparse.Namespace) -> None:
    """``--topk``, ``--threshold``, ``--batch-size``, ``--workers`` or ``--resize`` out of range: a
    one-line error before torch loads."""
    from camloc.commands._common import check_pipeline_options
    from camloc.defaults import check_map_options

    from camloc.commands._method_args import check_method_arguments

    check_map_options(args)
    check_method_arguments(args, "evaluate")
    if args.faithfulness_steps < 1:
        raise ValueError(f"--faithfulness-steps must be a positive integer, got {args.faithfulness_steps}")
    if args.faithfulness and args.ten_crop:
        raise ValueError("--faithfulness perturbs the pipeline's network input: not with --ten-crop")
    check_pipeline_options(args)


def run(args: argparse.Namespace) -> int:
    from camloc.commands._common import load_net, resize_option
    from camloc.data import open_dataset
    from camloc.evaluate import EvalOptions, evaluate
    from camloc.pipeline.distributed import init_distributed, local_device
    from camloc.pixels.geometry import Resize
    from camloc.report import markdown_table, write_report

    rank, world = init_distributed()
    device = local_device(args.device)
    split = open_dataset(args.data, args.split, args.format, image_root=args.image_root, strict=args.strict)
    net = load_net(args.model, args.weights, device, args.method)
    opts = EvalOptions(method=args.method, layer=args.layer, method_options=args.method_options, topk=args.topk, box_threshold=args.threshold,
                       threshold_step=args.threshold_step, iou_thresholds=tuple(args.iou),
                       batch_size=args.batch_size, ten_crop=args.ten_crop, multibox=args.multibox,
                       resize=resize_option(args.resize, net, Resize("squash")),
                       backend=args.backend, workers=args.workers, isolate=args.isolate,
                       examples=0 if args.no_figures else 6, progress=None, norm=args.norm,
                       clamp_negative=args.clamp_negative, faithfulness=args.faithfulness,
                       faithfulness_steps=args.faithfulness_steps,
                       faithfulness_substrate=args.faithfulness_substrate)
    result = evaluate(net, split, opts, rank=rank, world=world)
    if rank != 0:
        return 0
    skipped = list(split.skipped) + result.skipped
    metrics = {"model": net.name, "data": str(args.data), "split": args.split, **result.metrics,
               "geometry_source": "--resize" if args.resize else "the published protocol (squash)",
               "num_skipped": len(skipped), "skipped": skipped, "processes": world}
    if metrics.get("num_nonfinite_maps"):
        print(f"camloc evaluate: warning: {metrics['num_nonfinite_maps']} maps of --method {args.method} were not finite "
              "(NaN or inf); they are scored as maps without a box", file=sys.stderr)
    for line in skipped[:5]:
        print(f"camloc evaluate: skipped {line}", file=sys.stderr)
    if len(skipped) > 5:
        print(f"camloc evaluate: ... {len(skipped) - 5} more skipped (see metrics.json)", file=sys.stderr)
    written = write_report(args.out, metrics, result.thresholds, result.curves, result.examples,
                           figures=not args.no_figures)
    print(markdown_table({k: v for k, v in metrics.items() if k not in ("data", "skipped")}))
    print(f"\nwrote {', '.join(written)}")
    return 0
