"""``camloc evaluate-maps``: score maps written by any tool, against CVPR 2020 WSOL metadata."""

from __future__ import annotations

import argparse
import os
import sys

NAME = "evaluate-maps"
HELP = "score saved maps (<maps>/<image_id>.npy, 224x224 in [0, 1]) with MaxBoxAcc(V2) or PxAP"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--maps", required=True, help="folder of maps: <maps>/<image_id>.npy, the id kept whole")
    p.add_argument("--metadata", required=True, help="WSOL metadata folder of the split (image_ids.txt, ...)")
    p.add_argument("--mask-root", default=None, help="folder the mask paths are relative to (mask metadata)")
    p.add_argument("--iou", type=int, nargs="+", default=[30, 50, 70], help="IoU thresholds in %% (30 50 70)")
    p.add_argument("--threshold-step", type=float, default=0.01, help="CAM threshold step (0.01)")
    p.add_argument("--multi-contour", action=argparse.BooleanOptionalAction, default=True,
                   help="boxes of all contours (MaxBoxAccV2, default) or only the largest (--no-multi-contour)")
    p.add_argument("--workers", type=int, default=0,
                   help="scoring processes (0: one per CPU core from 1,000 maps on, else 1)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad metadata line instead of skipping")
    p.add_argument("--out", default="eval_maps_out", help="output folder (default eval_maps_out/)")
    p.add_argument("--no-figures", action="store_true", help="write metrics.json and metrics.csv only")


def _id_lines(metadata: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    with open(os.path.join(metadata, "image_ids.txt"), encoding="utf-8") as f:
        for i, text in enumerate(f, 1):
            lines.setdefault(text.rstrip("\r\n"), i)
    return lines


def map_path(maps: str, image_id: str, where: str) -> str:
    """``<maps>/<image_id>.npy``; an id that is absolute or climbs out with ``..`` is refused
    (one line naming the metadata line): metadata must not make camloc read files elsewhere.
    The check is on the names; links placed inside ``--maps`` by its owner are followed."""
    root = os.path.abspath(maps)
    inside = os.path.abspath(os.path.join(root, image_id + ".npy"))
    if os.path.isabs(image_id) or "\0" in image_id or os.path.commonpath([root, inside]) != root:
        raise ValueError(f"{where}: image id {image_id!r} names a file outside the maps folder {maps}")
    return os.path.join(maps, image_id + ".npy")


def load_map(maps: str, image_id: str, where: str) -> "object":
    """``<maps>/<image_id>.npy`` as a checked float64 224x224 map; one-line errors naming the file."""
    import numpy as np

    from camloc.metrics.maxboxacc import RESIZE, check_scoremap

    path = map_path(maps, image_id, where)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no score map for image id {image_id!r} ({where})")
    try:
        m = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises several kinds for a bad file
        raise ValueError(f"{path}: cannot read score map ({' '.join(str(err).split())[:120]})") from None
    m = check_scoremap(m, path)
    if m.shape != (RESIZE, RESIZE):
        raise ValueError(f"{path}: score map is {m.shape[0]}x{m.shape[1]}, the protocol scores {RESIZE}x{RESIZE} maps")
    return m


def _evaluator(args: argparse.Namespace, masks: bool):
    from camloc.metrics.maxboxacc import MaxBoxAccEvaluator
    from camloc.metrics.pxap import PxAPEvaluator

    if masks:
        return PxAPEvaluator(args.threshold_step)
    return MaxBoxAccEvaluator(args.iou, args.threshold_step, multi_contour=args.multi_contour)


def score_chunk(args: argparse.Namespace, samples: list, lines: dict[str, int], masks: bool) -> dict:
    """Load and score ``samples`` into a fresh evaluator; its state (sums) comes back, so chunks
    scored in other processes add up to the single-process result."""
    from camloc.metrics.maxboxacc import resize_box
    from camloc.metrics.pxap import ground_truth

    ev = _evaluator(args, masks)
    ids_file = os.path.join(args.metadata, "image_ids.txt")
    for s in samples:
        where = f"{ids_file}:{lines.get(s.image_id, '?')}"
        m = load_map(args.maps, s.image_id, where)
        if masks:
            ev.accumulate([m], [ground_truth(s.masks or [s.mask], s.ignore)])
            continue
        if not s.boxes:
            raise ValueError(f"{os.path.join(args.metadata, 'localization.txt')}: no box for image id {s.image_id!r} ({where})")
        if s.size is None:
            raise ValueError(f"{os.path.join(args.metadata, 'image_sizes.txt')}: no size for image id {s.image_id!r}, "
                             "needed to scale its boxes to 224x224")
        ev.accumulate([m], [[resize_box(b, s.size) for b in s.boxes]])
    return ev.state()


def _score_all(args: argparse.Namespace, samples: list, lines: dict[str, int], masks: bool, ev) -> None:
    """Score every sample into ``ev``: in this process, or in ``--workers`` spawned processes
    (fresh interpreters: forking a process with running thread pools can deadlock), chunk by
    chunk, with a progress bar either way. The first error stops the run, naming its file."""
    from tqdm.auto import tqdm

    workers = args.workers or ((os.cpu_count() or 1) if len(samples) >= 1000 else 1)
    chunks = [samples[i : i + 32] for i in range(0, len(samples), 32)]
    bar = tqdm(total=len(samples), desc="evaluate-maps", unit="map", disable=None)
    try:
        if workers <= 1:
            for chunk in chunks:
                ev.merge(score_chunk(args, chunk, lines, masks))
                bar.update(len(chunk))
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(score_chunk, args, chunk, lines, masks) for chunk in chunks]
            try:
                for chunk, fut in zip(chunks, futures):
                    ev.merge(fut.result())
                    bar.update(len(chunk))
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        bar.close()


def run(args: argparse.Namespace) -> int:
    from camloc.data.wsol import read_wsol
    from camloc.report import markdown_table, write_report

    if not os.path.isdir(args.maps):
        raise ValueError(f"{args.maps}: no such folder of maps")
    if args.workers < 0:
        raise ValueError(f"--workers must be 0 (auto) or more, got {args.workers}")
    split = read_wsol(args.metadata, mask_root=args.mask_root, strict=args.strict)
    lines = _id_lines(args.metadata)
    masks = any(s.masks or s.mask for s in split.samples)
    ev = _evaluator(args, masks)
    _score_all(args, list(split.samples), lines, masks, ev)
    metrics = {"maps": args.maps, "metadata": args.metadata, **ev.compute(),
               "num_skipped": len(split.skipped), "skipped": list(split.skipped)}
    for line in split.skipped[:5]:
        print(f"camloc evaluate-maps: {line}", file=sys.stderr)
    thresholds, curves = [], {}
    if not masks:
        thresholds = ev.thresholds.tolist()
        kind = "all contours" if args.multi_contour else "largest contour"
        curves = {f"IoU {d / 100:.2f}, {kind}": c.tolist() for d, c in ev.curves().items()}
    written = write_report(args.out, metrics, thresholds, curves, figures=not args.no_figures)
    flat = {k: v for k, v in metrics.items() if k not in ("maps", "metadata", "skipped")}
    flat.update({f"best_threshold@{d}": t for d, t in metrics.get("best_threshold", {}).items()})
    print(markdown_table(flat))
    print(f"\nwrote {', '.join(written)}")
    return 0
