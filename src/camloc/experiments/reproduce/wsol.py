"""``make reproduce-wsol``: the CVPR 2020 WSOL benchmark's verdict on CPU, on the Fashion-MNIST
localization benchmark (:mod:`camloc.experiments.fashion_loc`, clean and cluttered regimes).

For each regime and each of the six methods (cam, has, acol, spg, adl, cutmix): the same search
budget (``trials`` Optuna random-search trials of the method's keys and the learning rate, each
scored by MaxBoxAccV2 on ``K`` box-labelled validation images per class, :mod:`camloc.train.search`),
then the best configuration retrained with every seed and tested once per seed. The report gives
MaxBoxAccV2 at IoU 0.3/0.5/0.7 and their mean, top-1 localization, GT-known localization and
classification error as mean and spread (sample standard deviation) over the seeds; a method
"beats CAM beyond the spread" when its mean MaxBoxAccV2 exceeds CAM's by more than the sum of the
two spreads. The few-shot fully supervised baseline (:mod:`camloc.train.fewshot`: a ridge box
regressor on the CAM nets' frozen features, fitted on the same K box-labelled images per class)
stands beside them.

Everything resumes: the data, each study (SQLite), each seed's run and test are kept under
``--out`` and skipped when done.

    python -m camloc.experiments.reproduce.wsol --out reproduce_wsol_out            # the full plan
    python -m camloc.experiments.reproduce.wsol --out /tmp/q --quick                # a minute
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("cam", "has", "acol", "spg", "adl", "cutmix")


@dataclass(frozen=True)
class Plan:
    train: int = 3000
    val: int = 500
    test: int = 1000
    epochs: int = 8
    trials: int = 4
    seeds: tuple[int, ...] = (0, 1, 2)
    regimes: tuple[str, ...] = ("clean", "cluttered")
    methods: tuple[str, ...] = METHODS
    val_per_class: int = 5
    widths: tuple[int, ...] = (16, 32, 64)
    head_channels: int = 64
    batch_size: int = 64
    lr: float = 0.05


FULL = Plan()
QUICK = Plan(train=40, val=100, test=20, epochs=1, trials=1, seeds=(0,), regimes=("clean",), val_per_class=2,
             widths=(8, 16), head_channels=16, batch_size=20)


def _config(plan: Plan, data: Path) -> Any:
    from camloc.train.config import TrainConfig

    return TrainConfig(data=str(data), model="fashion_gap", model_args={"widths": list(plan.widths),
                       "head_channels": plan.head_channels}, epochs=plan.epochs, batch_size=plan.batch_size,
                       lr=plan.lr, lr_schedule="cosine", resize=64, crop=64, flip=True, workers=0, progress=False,
                       amp=False, weight_decay=1e-4).check("reproduce-wsol")


def _spread(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


FIGURES = (("MaxBoxAccV2@30", "MaxBoxAccV2@30"), ("MaxBoxAccV2@50", "MaxBoxAccV2@50"),
           ("MaxBoxAccV2@70", "MaxBoxAccV2@70"), ("MaxBoxAccV2", "MaxBoxAccV2"), ("top1_loc", None),
           ("gt_known", "gt_known_loc_acc"), ("cls_error", "top1_cls_error"))


def summarize(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """``{figure: [mean, spread]}`` over one method's seeds."""
    out: dict[str, list[float]] = {}
    for name, key in FIGURES:
        vals = [100.0 - r["top1_loc_error"] if key is None else r[key] for r in runs]
        out[name] = list(_spread(vals))
    return out


def run_regime(plan: Plan, regime: str, out: Path, log: Any) -> dict[str, Any]:
    from camloc.experiments.fashion_loc import write_benchmark
    from camloc.train.data import open_split
    from camloc.train.search import SearchOptions, box_subset, search, train_and_test

    data = out / "data" / regime
    if not (data / "benchmark.json").is_file():
        write_benchmark(data, regime, {"train": plan.train, "val": plan.val, "test": plan.test}, seed=0,
                        progress=False)
    cfg = _config(plan, data)
    val = box_subset(open_split(cfg, "val"), plan.val_per_class, str(data))
    test = open_split(cfg, "test")
    result: dict[str, Any] = {"methods": {}}
    for method in plan.methods:
        t0 = time.perf_counter()
        base = out / regime / method
        found = search(cfg, SearchOptions(method=method, trials=plan.trials, out=str(base / "search"),
                                          val_per_class=plan.val_per_class, final=False, seed=0))
        runs = []
        for seed in plan.seeds:
            done = base / f"seed{seed}" / "test.json"
            if done.is_file():
                runs.append(json.loads(done.read_text())["metrics"])
                continue
            runs.append(train_and_test(cfg, method, found["best_lr"], found["best_wsol_args"] or {}, seed,
                                       base / f"seed{seed}", val, test))
        result["methods"][method] = {"best_lr": found["best_lr"], "best_wsol_args": found["best_wsol_args"],
                                     "best_val": found["best_val"]["MaxBoxAccV2"], "failed_trials": found["failed"],
                                     "summary": summarize(runs), "seeds": [r["seed"] for r in runs],
                                     "fewshot": [r["fewshot"] for r in runs], "minutes": None}
        result["methods"][method]["minutes"] = round((time.perf_counter() - t0) / 60, 2)
        log(f"{regime} {method}: test MaxBoxAccV2 {result['methods'][method]['summary']['MaxBoxAccV2'][0]:.2f}")
    cam = result["methods"].get("cam")
    if cam is not None:
        fs = cam["fewshot"]
        result["fewshot"] = {f"BoxAcc@{d}": list(_spread([f[f"BoxAcc@{d}"] for f in fs])) for d in (30, 50, 70)}
        result["fewshot"]["BoxAcc"] = list(_spread([f["BoxAcc"] for f in fs]))
        c_mean, c_sd = cam["summary"]["MaxBoxAccV2"]
        for method, r in result["methods"].items():
            m_mean, m_sd = r["summary"]["MaxBoxAccV2"]
            # one seed has no spread to beat: no verdict
            r["beats_cam"] = None if len(plan.seeds) < 2 else (method != "cam" and m_mean - c_mean > m_sd + c_sd)
    return result


def report_markdown(plan: Plan, results: dict[str, Any], minutes: float) -> str:
    lines = [f"Plan: {plan.train} train / {plan.val} val ({plan.val_per_class} box-labelled per class used) / "
             f"{plan.test} test canvases per regime; fashion_gap widths {list(plan.widths)}, head "
             f"{plan.head_channels}; {plan.epochs} epochs; {plan.trials} random-search trials per method; seeds "
             f"{list(plan.seeds)}; {minutes:.1f} minutes in all.", ""]
    for regime, res in results.items():
        lines += [f"**{regime}** (test; mean ± spread over seeds)", "",
                  "| method | MaxBoxAccV2@30 | @50 | @70 | mean | top-1 loc | GT-known | cls error | beats CAM? |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for method, r in res["methods"].items():
            s = r["summary"]
            cells = [f"{s[n][0]:.1f} ± {s[n][1]:.1f}" for n, _ in FIGURES]
            beats = r.get("beats_cam")
            verdict = "-" if method == "cam" else ("n/a (1 seed)" if beats is None else ("yes" if beats else "no"))
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {verdict} |")
        if "fewshot" in res:
            f = res["fewshot"]
            lines.append("| few-shot box regressor (K/class) | " + " | ".join(
                f"{f[k][0]:.1f} ± {f[k][1]:.1f}" for k in ("BoxAcc@30", "BoxAcc@50", "BoxAcc@70", "BoxAcc"))
                + " | - | - | - | - |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camloc.experiments.reproduce.wsol", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="reproduce_wsol_out")
    parser.add_argument("--quick", action="store_true", help="a minute: one regime, tiny sets, one trial and seed")
    for key in ("train", "val", "test", "epochs", "trials"):
        parser.add_argument(f"--{key}", type=int, help=f"override the plan's {key}")
    parser.add_argument("--seeds", help="comma-separated seeds")
    parser.add_argument("--regimes", help="comma-separated: clean,cluttered")
    parser.add_argument("--methods", help="comma-separated subset of " + ",".join(METHODS))
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    for key in ("train", "val", "test", "epochs", "trials"):
        if getattr(args, key) is not None:
            plan = replace(plan, **{key: getattr(args, key)})
    if args.seeds:
        plan = replace(plan, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.regimes:
        plan = replace(plan, regimes=tuple(args.regimes.split(",")))
    if args.methods:
        bad = [m for m in args.methods.split(",") if m not in METHODS]
        if bad:
            print(f"reproduce-wsol: error: unknown method '{bad[0]}' (methods: {', '.join(METHODS)})", file=sys.stderr)
            return 1
        plan = replace(plan, methods=tuple(args.methods.split(",")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{(time.perf_counter() - t0) / 60:6.1f} min] {text}", file=sys.stderr, flush=True)

    from camloc.io import atomic_write_json, atomic_write_text

    results: dict[str, Any] = {}
    for regime in plan.regimes:  # the report is rewritten after each regime
        results[regime] = run_regime(plan, regime, out, log)
        minutes = (time.perf_counter() - t0) / 60
        atomic_write_json(out / "report.json", {"plan": asdict(plan), "minutes": minutes, "load": os.getloadavg(),
                                                "results": results})
        text = report_markdown(plan, results, minutes)
        atomic_write_text(out / "report.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
