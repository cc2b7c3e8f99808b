"""Many map methods over one split with boxes, scored alike: one table and one figure grid.

Images outer, methods inner: each photo is decoded and preprocessed once (squash to the net's
input, the protocol's geometry) and every method maps its true class from the same input.
Every map goes through the one scorer (:func:`camloc.scoring.score` into a
:class:`~camloc.scoring.Tally`: MaxBoxAccV2 at IoU 30/50/70, top-1 loc and GT-known with the 20 %
rule, PxAP where the split has masks) and the faithfulness metrics of
:mod:`camloc.metrics.faithfulness` (deletion / insertion AUC, Average Drop / Increase, pointing
game) and :mod:`camloc.metrics.road` (ROAD: the MoRF and LeRF probability, averaged over the
removed fractions, on the first ``road_images`` photos: each map costs ``2 x fractions`` sparse
solves at the input size), plus the sanity check's rank correlation (:mod:`camloc.sanity`, classifier and top block
randomised, on the first ``sanity_images`` photos) and the time per image of the map alone.

Each row says how many photos it used: the perturbation methods (hundreds of forward passes per
photo) run on the first ``subset`` photos.

The methods map each photo inside :func:`camloc.methods.shared.shared_passes` (``share=True``):
the closed-form family at a GAP + linear head reads one forward pass, the gradient methods at one
layer one forward and one backward. A method's ``ms/img`` is then its own time given what the
methods before it computed (the first of a group pays the shared pass); ``share=False`` times each
alone. Standard errors are over photos: of the per-photo
values for the AUCs and the drop, ``sqrt(p (1 - p) / n)`` for the rates.

The forward passes without gradients (the maps' and every curve's) run on the ``backend``'s engine
(:mod:`camloc.methods.engine`: ONNX Runtime on the CPU by default), and each photo's values go to
``on_photo`` as soon as they are done (the command's ``photos.jsonl``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from camloc.errors import one_line

PERTURBATION = ("scorecam", "sscam", "iscam", "ablationcam")
COLUMNS = (("MaxBoxAccV2", "MaxBoxAccV2"), ("IoU30", "MaxBoxAccV2@30"), ("IoU50", "MaxBoxAccV2@50"),
           ("IoU70", "MaxBoxAccV2@70"), ("top-1 loc", "top1_loc"), ("GT-known", "gt_known"), ("PxAP", "PxAP"),
           ("deletion", "deletion_auc"), ("insertion", "insertion_auc"), ("avg drop", "average_drop"),
           ("increase", "increase_in_confidence"), ("ROAD MoRF", "road_morf"), ("ROAD LeRF", "road_lerf"),
           ("pointing", "pointing_game"), ("sanity |r|", "sanity_abs_r"),
           ("ms/img", "ms_per_image"))
LOWER_IS_BETTER = {"deletion_auc", "average_drop", "road_morf", "sanity_abs_r", "ms_per_image"}
THREE_DIGITS = {"deletion_auc", "insertion_auc", "road_morf", "road_lerf", "road_gap", "sanity_abs_r"}


@dataclass
class _Acc:
    """One method's running sums."""

    tally: Any
    n: int = 0
    seconds: float = 0.0
    deletion: list[float] = field(default_factory=list)
    insertion: list[float] = field(default_factory=list)
    drop: list[float] = field(default_factory=list)
    increase: list[float] = field(default_factory=list)
    pointing: list[float] = field(default_factory=list)
    road_morf: list[float] = field(default_factory=list)
    road_lerf: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nonfinite: int = 0


def _se_rate(p: float, n: int) -> float:
    return float(np.sqrt(max(p * (100 - p), 0.0) / n)) if n else float("nan")


def _mean_se(values: Sequence[float], scale: float = 1.0) -> tuple[float, float]:
    v = np.asarray(values, np.float64) * scale
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def compare(net: Any, samples: Sequence[Any], methods: dict[str, Any], limit: int | None = None, subset: int = 100,
            steps: int = 8, substrate: str = "blur", sanity_images: int = 4, examples: int = 4,
            road_images: int = 20, road_fractions: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9), share: bool = True,
            backend: str = "auto", progress: bool = True,
            on_photo: Callable[[int, dict[str, Any]], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (one per method, metrics with their standard errors and image counts) and the figure's
    data (``images``: the first ``examples`` photos at 224x224; ``maps[name]``: their protocol
    maps; ``boxes``: their ground truth).

    ``backend`` runs the forward passes that need no gradients, the maps' and the faithfulness
    curves' (:func:`camloc.methods.engine.engine_for`: ``"auto"`` is ONNX Runtime on the CPU, each
    graph checked against PyTorch; a method built with its own ``engine`` keeps it); backward passes
    run in PyTorch, and so does the sanity check except the perturbation methods' masked passes (a
    randomised net is exported again: worth it only where a map costs many passes). A method's
    ``ms_per_image`` includes the export of the graphs it is the first to need.

    ``on_photo(index, record)``, when given, receives each photo's values as soon as they are done
    (``image_id``, ``label``, and per method its 20 % box, pointing hit, AUCs, drop, ROAD, ms, or
    the error): what ``camloc compare`` streams to ``photos.jsonl``, so a killed run keeps them."""
    from tqdm.auto import tqdm

    from camloc.errors import ImageError
    from camloc.boxes import pointing_hit
    from camloc.io import finite_json
    from camloc.metrics.faithfulness import auc, confidence_change, perturbation_curves
    from camloc.metrics.maxboxacc import RESIZE
    from camloc.metrics.road import check_fractions, road_curves, road_scores
    from camloc.methods.base import module_of
    from camloc.methods.engine import engine_for, forward_engine
    from camloc.methods.perturbation import logits
    from camloc.methods.shared import shared_passes
    from camloc.pixels.decode import load_image
    from camloc.readings import upsample
    from camloc.scoring import Scoring, Tally, score

    if getattr(net, "probe", None) is not None:
        raise ValueError(f"compare: {getattr(net, 'name', 'the net')} has a probe attached, and compare scores the "
                         "backbone's own classifier (its classes, the faithfulness curves, the perturbation methods); "
                         "fold the probe into the head as a checkpoint first (benchmarks/bench_textloc.py --compare "
                         "does) or detach it")
    samples = list(samples)[:limit] if limit else list(samples)
    road_fractions = check_fractions(road_fractions)
    masks = any(s.masks or s.mask for s in samples)
    if not samples or not (masks or any(s.boxes for s in samples)):
        raise ValueError("compare: the split has no boxes or masks to score maps against (for WSOL metadata, "
                         "--split names the folder of metadata files and --image-root the images)")
    scoring = Scoring(box_threshold=0.2, loc_ks=(1,), contours=((True, (30, 50, 70)), (False, (50,))))
    acc = {name: _Acc(Tally(scoring, masks=masks)) for name in methods}
    model = module_of(net)
    figure: dict[str, Any] = {"images": [], "boxes": [], "maps": {name: [] for name in methods}}
    sanity_x: list[torch.Tensor] = []

    engine = engine_for(backend, getattr(net, "device", "cpu"))

    def scores(v: torch.Tensor) -> torch.Tensor:  # the engine's logits, without gradients
        return logits(model, v)

    with forward_engine(engine):
        for i, s in enumerate(tqdm(samples, desc="compare", unit="img", disable=not progress)):
            try:
                image = load_image(s.path)
            except ImageError as err:
                for a in acc.values():
                    a.errors.append(str(err))
                if on_photo is not None:
                    on_photo(i, {"image_id": str(s.image_id), "label": int(s.label), "error": str(err)})
                continue
            x = net.preprocess([image]).to(net.device if hasattr(net, "device") else "cpu")
            row = scores(x)[0]
            top = row.topk(min(5, row.shape[0])).indices.cpu().numpy()
            if len(sanity_x) < sanity_images:
                sanity_x.append(x)
            if i < examples:
                figure["images"].append(np.asarray(image.convert("RGB").resize((RESIZE, RESIZE))))
            raws: dict[str, np.ndarray] = {}
            record: dict[str, dict[str, Any]] = {}
            with shared_passes(x) if share else nullcontext():
                for name, method in methods.items():
                    if name in PERTURBATION and i >= subset:
                        continue
                    t0 = time.perf_counter()
                    try:
                        raw = method(net, x, torch.tensor([[s.label]], device=x.device))[0, 0]
                        raws[name] = raw.detach().float().cpu().numpy()
                    except (ValueError, RuntimeError) as err:
                        acc[name].errors.append(f"{s.image_id}: {one_line(err, 200)}")
                        record[name] = {"error": one_line(err, 200)}
                        continue
                    seconds = time.perf_counter() - t0
                    acc[name].seconds += seconds
                    record[name] = {"ms": round(1000 * seconds, 3)}
            for name, raw in raws.items():
                a = acc[name]
                a.n += 1
                values = record[name]
                values["finite"] = bool(np.isfinite(raw).all())
                if not values["finite"]:  # scored as a map without a box (a miss); said in the row
                    a.nonfinite += 1
                out = score(s, scoring, raw, image_size=image.size)
                a.tally.add(s, out, top[:1])
                if i < examples:
                    figure["maps"][name].append(out.protocol)
                    if name == next(iter(raws)):
                        figure["boxes"].append(out.gt)
                values["box"] = [int(v) for v in out.box] if out.box is not None else None
                if out.gt:
                    a.pointing.append(100.0 * pointing_hit(out.protocol, out.gt))
                    values["pointing"] = a.pointing[-1]
                m = torch.from_numpy(np.nan_to_num(upsample(raw, tuple(x.shape[-2:])))).to(x.device)[None]
                cls = torch.tensor([s.label], device=x.device)
                dele, ins = perturbation_curves(scores, x, m, cls, steps, substrate)
                p, pm = confidence_change(scores, x, m, cls)
                a.deletion.append(float(auc(dele)[0]))
                a.insertion.append(float(auc(ins)[0]))
                a.drop.append(float(100 * max(0.0, p[0] - pm[0]) / max(p[0], 1e-12)))
                a.increase.append(100.0 * float(pm[0] > p[0]))
                values.update(deletion_auc=a.deletion[-1], insertion_auc=a.insertion[-1], average_drop=a.drop[-1],
                              increase=a.increase[-1])
                if i < road_images:
                    r = road_scores(road_curves(scores, x, m, cls, road_fractions))
                    a.road_morf.append(float(r["road_morf"][0]))
                    a.road_lerf.append(float(r["road_lerf"][0]))
                    values.update(road_morf=a.road_morf[-1], road_lerf=a.road_lerf[-1])
            if on_photo is not None:
                on_photo(i, finite_json({"image_id": str(s.image_id), "label": int(s.label), "methods": record}))
    rows = []
    for name in methods:  # the sanity check: the perturbation methods' masked passes on the engine (their
        # graphs exported again per randomised block, seconds against minutes), the others in PyTorch
        with forward_engine(engine if name in PERTURBATION else "torch"):
            rows.append(_row(name, acc[name], methods[name], net, sanity_x))
        rows[-1]["engine"] = getattr(methods[name], "engine", None) or engine
    return rows, figure


def _row(name: str, a: _Acc, method: Any, net: Any, sanity_x: list[torch.Tensor]) -> dict[str, Any]:
    row: dict[str, Any] = {"method": name, "num_images": a.n, "errors": a.errors[:5], "num_errors": len(a.errors)}
    if a.nonfinite:
        row["num_nonfinite_maps"] = a.nonfinite
        row["warning"] = (f"{a.nonfinite} of {a.n} maps not finite (NaN or inf): no box, scored as misses; "
                          "faithfulness reads them with NaN as 0")
    if not a.n:
        return row
    v2 = a.tally.boxacc[True].compute()
    n_box = int(v2["num_images"])
    row["MaxBoxAccV2"] = v2["MaxBoxAccV2"]
    for d in (30, 50, 70):
        row[f"MaxBoxAccV2@{d}"] = v2[f"MaxBoxAcc@{d}"]
        row[f"MaxBoxAccV2@{d}_se"] = _se_rate(v2[f"MaxBoxAcc@{d}"], n_box)
    row["MaxBoxAccV2_se"] = float(np.mean([row[f"MaxBoxAccV2@{d}_se"] for d in (30, 50, 70)]))
    loc = a.tally.loc.compute() if int(a.tally.loc.state()["count"][0]) else {"top1_loc_error": float("nan"),
                                                                              "gt_known_loc_acc": float("nan")}
    for key, value in (("top1_loc", 100.0 - loc["top1_loc_error"]), ("gt_known", loc["gt_known_loc_acc"])):
        row[key], row[f"{key}_se"] = float(value), _se_rate(float(value), n_box)
    if a.tally.pxap is not None and int(a.tally.pxap.state()["count"][0]):
        row["PxAP"] = a.tally.pxap.compute()["PxAP"]
    for key, values, scale in (("deletion_auc", a.deletion, 1.0), ("insertion_auc", a.insertion, 1.0),
                               ("average_drop", a.drop, 1.0), ("increase_in_confidence", a.increase, 1.0),
                               ("pointing_game", a.pointing, 1.0), ("road_morf", a.road_morf, 1.0),
                               ("road_lerf", a.road_lerf, 1.0)):
        if values:
            row[key], row[f"{key}_se"] = _mean_se(values, scale)
    if a.road_morf:
        row["road_gap"], row["road_gap_se"] = _mean_se(np.subtract(a.road_lerf, a.road_morf))
        row["num_road_images"] = len(a.road_morf)
    row["ms_per_image"] = 1000 * a.seconds / a.n
    if sanity_x:
        from camloc.sanity import sanity

        try:
            r = sanity(net, method, torch.cat(sanity_x), depth=2)
            step = r.top_block_step
            row["sanity_r"], row["sanity_r_se"] = r.top_block_correlation, step["se"]
            row["sanity_abs_r"], row["sanity_abs_r_se"] = r.top_block_abs_correlation, step["abs_se"]
            row["sanity_images"] = r.num_images
            row["sanity_flagged"] = r.flagged
        except (ValueError, RuntimeError) as err:
            row["sanity_error"] = one_line(err, 200)
    return row


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The table: each value with its standard error over photos, and the images each row used."""
    head = "| method | images | " + " | ".join(c for c, _ in COLUMNS) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for _, key in COLUMNS:
            v = r.get(key)
            if v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("-")
                continue
            fmt = "{:.3f}" if key in THREE_DIGITS else "{:.1f}"
            se = r.get(f"{key}_se")
            cells.append(fmt.format(v) + (f" ± {fmt.format(se)}" if se is not None and key != "MaxBoxAccV2" else ""))
        lines.append(f"| {r['method']} | {r.get('num_images', 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def winners(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Per column: the best method, its margin over the runner-up and that margin in standard errors
    (the larger of the two rows' standard errors); two rows scored on different photo counts (a
    perturbation method's ``subset``) say so, as their values are not of the same photos."""
    out = []
    for label, key in COLUMNS:
        have = [r for r in rows if isinstance(r.get(key), (int, float)) and not np.isnan(r[key])
                and r["method"] not in ("random", "center")]
        if len(have) < 2:
            continue
        best = sorted(have, key=lambda r: r[key], reverse=key not in LOWER_IS_BETTER)
        a, b = best[0], best[1]
        margin = abs(a[key] - b[key])
        se = max(a.get(f"{key}_se") or 0.0, b.get(f"{key}_se") or 0.0)
        spread = f", {margin / se:.1f} s.e." if se > 0 else ""
        if a.get("num_images") != b.get("num_images"):
            spread += f" (on {a.get('num_images')} and {b.get('num_images')} photos: not the same photos)"
        out.append(f"{label}: {a['method']} ({a[key]:.3g}) over {b['method']} ({b[key]:.3g}) by {margin:.3g}{spread}")
    return out


def refusals(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per method that failed on some photos: how many and the first reason (a method
    that cannot apply to the net, e.g. LeGrad on a CNN, fails on every photo and has an empty row)."""
    out = []
    for r in rows:
        n, errors = r.get("num_errors", 0), r.get("errors") or []
        if n:
            what = "refused on every photo" if not r.get("num_images") else f"failed on {n} photos"
            first = errors[0].split(": ", 1)[-1] if errors else ""
            out.append(f"{r['method']}: {what} ({n}): {first}")
    return out


def figure_grid(figure: dict[str, Any], path: str, side: int = 112) -> None:
    """Methods (rows) x photos (columns): each map over the photo with its ground-truth box."""
    import cv2

    from camloc.viz.panels import GT_COLOR, title_band, draw_box, heat_overlay, save_png

    images = figure["images"]
    if not images:
        return
    rows = []
    for name, maps in figure["maps"].items():
        cells = []
        for j, img in enumerate(images):
            if j < len(maps):
                panel = heat_overlay(img, np.clip(maps[j], 0, 1))
                for b in figure["boxes"][j] if j < len(figure["boxes"]) else []:
                    panel = draw_box(panel, b, GT_COLOR)
            else:
                panel = np.full_like(img, 255)
            cells.append(cv2.resize(panel, (side, side), interpolation=cv2.INTER_AREA))
        label = title_band(name, 90)
        label = np.concatenate([label, np.full((side - label.shape[0], 90, 3), 255, np.uint8)])
        rows.append(np.concatenate([label, *cells], axis=1))
    save_png(path, np.concatenate(rows, axis=0))
