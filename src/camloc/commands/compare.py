"""``camloc compare``: every map method over a split with boxes, scored by the one scorer and the
faithfulness metrics, with the sanity correlation and the time per image: one table (markdown and
JSON) and one figure grid (methods x photos)."""

from __future__ import annotations

import argparse
import sys

from camloc.errors import one_line

NAME = "compare"
HELP = ("compare map methods on a split with boxes: MaxBoxAccV2, top-1 loc, GT-known, PxAP, deletion/insertion AUC, "
        "Average Drop/Increase, ROAD, pointing game, sanity correlation, time per image; one table and one figure")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments
    from camloc.defaults import add_backend_argument, add_device_argument
    from camloc.commands._common import add_data_arguments

    add_model_arguments(p, probe=False)
    add_data_arguments(p)
    p.add_argument("--methods", default="all", help="all (default) or a comma list of registry names")
    p.add_argument("--method-option", action="append", default=None, metavar="NAME.KEY=VALUE",
                   help="an option of one method, e.g. sscam.n=8 (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="the first N photos of the split (default: all)")
    p.add_argument("--subset", type=int, default=100,
                   help="the perturbation methods (scorecam, sscam, iscam, ablationcam) run on the first N photos (100)")
    p.add_argument("--steps", type=int, default=8, help="points - 1 of the deletion/insertion curves (8)")
    p.add_argument("--substrate", default="blur", choices=("blur", "mean", "zero"),
                   help="what deleted pixels become (default blur)")
    p.add_argument("--road-images", type=int, default=20,
                   help="photos scored by ROAD (remove and debias; 2 x fractions sparse solves per map; default 20, 0: none)")
    p.add_argument("--road-fractions", default="0.1,0.3,0.5,0.7,0.9", metavar="P1,P2,...",
                   help="the fractions of pixels ROAD removes, each in (0, 1) (default 0.1,0.3,0.5,0.7,0.9)")
    p.add_argument("--no-share", action="store_true",
                   help="run every method's own forward/backward passes (default: methods share them; the times differ)")
    p.add_argument("--sanity-images", type=int, default=4,
                   help="photos of the randomisation check per method (default 4; 0: none)")
    p.add_argument("--examples", type=int, default=4, help="photos in the figure grid (4)")
    p.add_argument("--out", default="compare_out", help="output folder (default compare_out/)")
    add_backend_argument(p, help="what runs the forward passes without gradients, the maps' and the faithfulness "
                         "curves': auto (default: ONNX Runtime on the CPU, each graph checked against PyTorch; "
                         "PyTorch on a GPU), torch or onnxruntime; backward passes run in PyTorch, and the sanity check "
                         "too except the perturbation methods' masked passes")
    add_device_argument(p)


def _options(items: list[str] | None) -> dict[str, dict[str, object]]:
    from camloc.method_names import parse_method_options

    out: dict[str, dict[str, object]] = {}
    for item in items or []:
        name, dot, rest = str(item).partition(".")
        if not dot:
            raise ValueError(f"--method-option {item!r}: expected NAME.KEY=VALUE (e.g. sscam.n=8)")
        out.setdefault(name, {}).update(parse_method_options([rest]))
    return out


def road_fraction_list(text: object) -> tuple[float, ...]:
    """``--road-fractions``: distinct numbers in (0, 1), comma-separated (a parsed tuple passes through)."""
    from camloc.metrics.road import check_fractions

    if isinstance(text, tuple):
        return check_fractions(text)
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--road-fractions {str(text)[:60]!r}: expected numbers in (0, 1), e.g. 0.1,0.5,0.9") from None
    try:
        return check_fractions(values)
    except ValueError as err:
        raise ValueError(f"--road-fractions {str(text)[:60]!r}: {str(err).removeprefix('road: ')}") from None


def check(args: argparse.Namespace) -> None:
    from camloc.commands._method_args import method_list

    names = method_list(args.methods)
    for name in _options(args.method_option):
        if name not in names:
            raise ValueError(f"--method-option names {name!r}, which is not among --methods")
    for flag in ("subset", "steps", "examples"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if args.road_images < 0:
        raise ValueError(f"--road-images must be >= 0, got {args.road_images}")
    args.road_fractions = road_fraction_list(args.road_fractions)
    if args.sanity_images < 0:
        raise ValueError(f"--sanity-images must be >= 0, got {args.sanity_images}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from camloc.commands._common import load_net
    from camloc.commands._method_args import method_list
    from camloc.compare import compare, figure_grid, markdown, refusals, winners
    from camloc.data import open_dataset
    from camloc.io import atomic_write_json, atomic_write_text
    from camloc.methods import get_method
    from camloc.pipeline.distributed import local_device
    from camloc.pipeline.records import JsonlWriter

    names = method_list(args.methods)
    options = _options(args.method_option)
    net = load_net(args.model, args.weights, local_device(args.device), method="gradcam")
    split = open_dataset(args.data, args.split, args.format, image_root=args.image_root, strict=args.strict)
    methods = {}
    for name in names:
        try:
            methods[name] = get_method(name, **options.get(name, {}))
        except ValueError as err:
            print(f"camloc compare: {name}: {one_line(err)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # each photo's values as it is done: a killed run keeps them in photos.jsonl.partial (an older
    # photos.jsonl stays until this run completes)
    writer = JsonlWriter(out / "photos.jsonl", mode="replace")
    try:
        rows, figure = compare(net, split.samples, methods, limit=args.limit, subset=args.subset, steps=args.steps,
                               substrate=args.substrate, sanity_images=args.sanity_images, examples=args.examples,
                               road_images=args.road_images, road_fractions=road_fraction_list(args.road_fractions),
                               share=not args.no_share, backend=args.backend, on_photo=writer.write)
    except BaseException:  # keeps the photos done; a run stopped before the first leaves no empty file
        writer.finish_part(complete=False, keep_empty=False)
        raise
    writer.finish_part(complete=True)
    table = markdown(rows)
    wins = winners(rows)
    refused = refusals(rows)
    atomic_write_text(out / "compare.md", table + "\n" + "\n".join(f"- {w}" for w in wins) + "\n"
                      + "".join(f"\n- not scored: {line}" for line in refused) + ("\n" if refused else ""))
    atomic_write_json(out / "compare.json", {"model": net.name, "data": str(args.data), "split": args.split,
                                             "limit": args.limit, "subset": args.subset, "steps": args.steps,
                                             "substrate": args.substrate, "road_images": args.road_images,
                                             "road_fractions": list(road_fraction_list(args.road_fractions)),
                                             "shared_passes": not args.no_share, "backend": args.backend,
                                             "rows": rows, "winners": wins})
    figure_grid(figure, str(out / "compare.png"))
    print(table)
    print("\n".join(wins))
    for line in refused:
        print(f"camloc compare: {line}", file=sys.stderr)
    for r in rows:
        if r.get("warning"):
            print(f"camloc compare: {r['method']}: {r['warning']}", file=sys.stderr)
    return 0 if any(r.get("num_images") for r in rows) else 1
