"""``camloc evaluate-maps``: score maps written by any tool, against CVPR 2020 WSOL metadata
(a thin command over :func:`camloc.scoring.evaluate_maps`)."""

from __future__ import annotations

import argparse
import sys

NAME = "evaluate-maps"
HELP = "score saved maps (<maps>/<image_id>.npy, 224x224 in [0, 1]) with MaxBoxAcc(V2) or PxAP"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.defaults import add_workers_argument

    p.add_argument("--maps", required=True, help="folder of maps: <maps>/<image_id>.npy, the id kept whole")
    p.add_argument("--metadata", required=True, help="WSOL metadata folder of the split (image_ids.txt, ...)")
    p.add_argument("--mask-root", default=None, help="folder the mask paths are relative to (mask metadata)")
    p.add_argument("--iou", type=int, nargs="+", default=[30, 50, 70], help="IoU thresholds in %% (30 50 70)")
    p.add_argument("--threshold-step", type=float, default=0.01, help="CAM threshold step (0.01)")
    p.add_argument("--multi-contour", action=argparse.BooleanOptionalAction, default=True,
                   help="boxes of all contours (MaxBoxAccV2, default) or only the largest (--no-multi-contour)")
    add_workers_argument(p, default=0, help="scoring processes (0: one per CPU core from 1,000 maps on, else 1)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad metadata line instead of skipping")
    p.add_argument("--out", default="eval_maps_out", help="output folder (default eval_maps_out/)")
    p.add_argument("--no-figures", action="store_true", help="write metrics.json and metrics.csv only")


def run(args: argparse.Namespace) -> int:
    from camloc.report import markdown_table, write_report
    from camloc.scoring.saved import evaluate_maps

    result = evaluate_maps(args.maps, args.metadata, mask_root=args.mask_root, iou=tuple(args.iou),
                           threshold_step=args.threshold_step, multi_contour=args.multi_contour,
                           workers=args.workers, strict=args.strict)
    metrics = result.metrics
    for line in metrics["skipped"][:5]:
        print(f"camloc evaluate-maps: {line}", file=sys.stderr)
    written = write_report(args.out, metrics, result.thresholds, result.curves, figures=not args.no_figures)
    flat = {k: v for k, v in metrics.items() if k not in ("maps", "metadata", "skipped")}
    flat.update({f"best_threshold@{d}": t for d, t in metrics.get("best_threshold", {}).items()})
    print(markdown_table(flat))
    print(f"\nwrote {', '.join(written)}")
    return 0
