"""Reproduce the paper's comparisons on CPU, on the Fashion-MNIST localization benchmark.

For each regime (clean, cluttered) the benchmark is generated once (:mod:`camloc.experiments.fashion_loc`,
written to disk in the CVPR 2020 metadata layout and read back from there); then, for each seed,
three small nets (:mod:`camloc.models.fashion`) are trained from image labels only:

* ``fashion_gap``: conv trunk, 3x3 conv, global average pooling, linear (CAM exact);
* ``fashion_gmp``: the same with global max pooling;
* ``fashion_fc``: the same trunk with a fully connected head (a classifier only).

On the regime's test set (the same images for every seed and method) it measures:

1. classification top-1 error of the three nets (the paper's Table 1);
2. for each map method -- CAM on the GAP net, CAM on the GMP net, Backprop saliency and Grad-CAM
   on the GAP net and on the FC net -- the true class's map is scored by
   :mod:`camloc.metrics`: top-1 localization error and GT-known localization accuracy with the
   paper's fixed rule (upsample to the canvas, 20 % of the max, largest connected component,
   IoU >= 0.5), and MaxBoxAcc (IoU 0.5, largest contour) / MaxBoxAccV2 (IoU 0.3/0.5/0.7, all
   contours) at the best threshold of ``arange(0, 1, 0.01)`` (the paper's Table 2);
3. a centered-box baseline: the best centered rectangle (its width and height tuned on the test
   set itself, an optimistic baseline);
4. BoxAcc against the map threshold for every method (the threshold curve).

Every number is computed exactly as ``camloc evaluate`` computes it on the same data and
checkpoint (the same evaluators, the protocol's 224x224 maps for MaxBoxAcc); the threshold sweep
runs in a few worker processes.

Everything is deterministic from the seeds. Trained nets are camloc checkpoints
(``OUT/runs/<regime>/<net>_seed<k>.pt``) that ``camloc localize/evaluate --model FILE`` load;
a rerun reuses the data and the finished checkpoints of the same plan.

The parts: :mod:`~camloc.experiments.reproduce.plan` (the methods and the plan),
:mod:`~camloc.experiments.reproduce.train` (data in memory, training),
:mod:`~camloc.experiments.reproduce.scores` (maps, scores, summaries),
:mod:`~camloc.experiments.reproduce.report` (tables and figures); this module runs them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from camloc.experiments.fashion_loc import REGIMES
from camloc.experiments.reproduce.plan import FULL, METHODS, NETS, QUICK, Plan, plan_from_dict
from camloc.experiments.reproduce.scores import aggregate, centered_baseline, evaluate_seed, method_maps
from camloc.experiments.reproduce.train import Images, prepare_data, read_images, trained_net
from camloc.io import atomic_write_json
from camloc.models.registry import load_model

__all__ = ["FULL", "QUICK", "Plan", "rerender", "reproduce"]


def reproduce(out: str | os.PathLike, plan: Plan = FULL, progress: bool = True,
              log: Callable[[str], None] | None = None, docs: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run the whole reproduction into ``out``; returns the results (also ``out/results.json``).

    Writes ``out/data/<regime>/`` (the benchmark), ``out/runs/<regime>/<net>_seed<k>.pt`` (the
    nets), ``out/results.json``, ``out/report.md`` (the tables) and the figures
    ``out/reproduce_examples_<regime>.png`` and ``out/reproduce_threshold_curves.png``; with
    ``docs``, the figures are also written there.
    """
    from camloc.experiments.reproduce.report import write_report

    out = Path(out)
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    t_start, c_start = time.perf_counter(), time.process_time()
    results: dict[str, Any] = {"format": "camloc-reproduce/1", "plan": plan.to_dict(),
                               "methods": {m.key: m.label for m in METHODS}, "regimes": {}, "timing": {}}
    examples: dict[str, Any] = {}
    from camloc.scoring import Pool

    with Pool(plan.workers or os.cpu_count() or 1) as pool:
        _run_regimes(out, plan, progress, say, results, examples, pool)
    results["timing"]["total_seconds"] = round(time.perf_counter() - t_start, 1)
    results["timing"]["cpu_seconds"] = round(time.process_time() - c_start, 1)
    results["timing"]["threads"] = torch.get_num_threads()
    results["timing"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    files = write_report(out, results, examples, plan, docs=docs)
    atomic_write_json(out / "results.json", results)
    say(f"done in {results['timing']['total_seconds'] / 60:.1f} min: {out / 'results.json'}, " + ", ".join(files))
    return results


def _run_regimes(out: Path, plan: Plan, progress: bool, say: Callable[[str], None], results: dict[str, Any],
                 examples: dict[str, Any], pool: Any) -> None:
    for regime in plan.regimes:
        if regime not in REGIMES:
            raise ValueError(f"unknown regime {regime!r}; expected one of {', '.join(REGIMES)}")
        t0 = time.perf_counter()
        folder = prepare_data(out, regime, plan, progress)
        train, val, test = (read_images(folder / s) for s in ("train", "val", "test"))
        say(f"[{regime}] data in {folder} ({len(train)} train, {len(val)} val, {len(test)} test images), "
            f"{time.perf_counter() - t0:.0f} s")
        baseline = centered_baseline(test.boxes, test.gray.shape[1])
        per_seed: dict[int, dict[str, Any]] = {}
        training: dict[str, Any] = {}
        timing = {"train": 0.0, "evaluate": 0.0}
        for seed in plan.seeds:
            t_seed = time.perf_counter()
            nets = {}
            for kind in NETS:
                t1 = time.perf_counter()
                path = out / "runs" / regime / f"{kind}_seed{seed}.pt"
                nets[kind], rows, reused = trained_net(kind, path, train, val, plan, seed, say, progress)
                training[f"{kind}_seed{seed}"] = {"epochs": rows, "reused": reused,
                                                  "seconds": round(time.perf_counter() - t1, 1)}
            t1 = time.perf_counter()
            timing["train"] += t1 - t_seed
            per_seed[seed], maps = evaluate_seed(nets, test, plan, progress, pool)
            timing["evaluate"] += time.perf_counter() - t1
            c = per_seed[seed]["classification"]
            m = per_seed[seed]["methods"]
            say(f"[{regime}] seed {seed}: top-1 error GAP {c['gap']:.1f}%, GMP {c['gmp']:.1f}%, FC {c['fc']:.1f}%; "
                f"MaxBoxAcc CAM-GAP {m['cam_gap']['MaxBoxAcc']:.1f}% ({m['cam_gap_relu']['MaxBoxAcc']:.1f}% ReLU), "
                f"CAM-GMP {m['cam_gmp']['MaxBoxAcc']:.1f}% ({m['cam_gmp_relu']['MaxBoxAcc']:.1f}% ReLU), "
                f"Backprop {m['backprop_gap']['MaxBoxAcc']:.1f}%; centered {baseline['MaxBoxAcc']:.1f}% "
                f"(evaluation {time.perf_counter() - t1:.0f} s)")
            results["map_side"] = int(nets["gap"].module.map_side)
            if seed == plan.seeds[0]:
                examples[regime] = {"images": test, "maps": maps}
        results["regimes"][regime] = {
            "benchmark": json.loads((folder / "benchmark.json").read_text()),
            "baseline": baseline, "seeds": {str(s): r for s, r in per_seed.items()},
            "summary": aggregate(per_seed), "training": training,
        }
        results["timing"][regime] = {"total": round(time.perf_counter() - t0, 1),
                                     **{k: round(v, 1) for k, v in timing.items()}}


def rerender(out: str | os.PathLike, docs: str | os.PathLike | None = None) -> list[str]:
    """Write ``report.md`` and the figures again from ``out/results.json`` and the seed's saved
    nets (the example maps are recomputed for the figure's rows only; nothing is trained)."""
    from camloc.experiments.reproduce.report import FIGURE_METHODS, write_report

    out = Path(out)
    path = out / "results.json"
    if not path.is_file():
        raise ValueError(f"{path}: no results to render (run camloc reproduce first)")
    results = json.loads(path.read_text())
    plan = plan_from_dict(results["plan"])
    examples: dict[str, Any] = {}
    for regime in results["regimes"]:
        test = read_images(out / "data" / regime / "test")
        n = min(plan.figure_rows, len(test))
        rows = Images(test.gray[:n], test.labels[:n], test.boxes[:n], test.ids[:n])
        nets = {m.net: load_model(out / "runs" / regime / f"{m.net}_seed{plan.seeds[0]}.pt")
                for m in METHODS if m.key in FIGURE_METHODS}
        maps = {m.key: method_maps(m, nets[m.net], rows) for m in METHODS if m.key in FIGURE_METHODS}
        examples[regime] = {"images": rows, "maps": maps}
    return write_report(out, results, examples, plan, docs=docs)
