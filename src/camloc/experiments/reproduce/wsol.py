"""``make reproduce-wsol``: the CVPR 2020 WSOL benchmark's verdict on CPU, on the Fashion-MNIST
localization benchmark (:mod:`camloc.experiments.fashion_loc`, clean and cluttered regimes).

For each regime and each of the six methods (cam, has, acol, spg, adl, cutmix): the same search
budget (``trials`` Optuna random-search trials of the method's keys and the learning rate, each
scored by MaxBoxAccV2 on ``K`` box-labelled validation images per class, :mod:`camloc.train.search`),
then the best configuration retrained with every seed and tested once per seed. The report gives
MaxBoxAccV2 at IoU 0.3/0.5/0.7 and their mean, top-1 localization, GT-known localization,
PxAP (pixel average precision against the benchmark's masks) and classification error as mean
and spread (sample standard deviation) over the seeds; a method
"beats CAM beyond the spread" when its mean MaxBoxAccV2 exceeds CAM's by more than the sum of the
two spreads. The few-shot fully supervised baseline (:mod:`camloc.train.fewshot`: a ridge box
regressor on the CAM nets' frozen features, fitted on the same K box-labelled images per class)
stands beside them.

Everything resumes: the data, each study (SQLite), each seed's run and test are kept under
``--out`` and skipped when done.

``--rescore`` trains nothing: it adds the masks to a benchmark written without them (checked
image for image against the regenerated one), computes the pixel figures a finished seed run
(``seed*/test.json`` beside its ``last.pt``) lacks from its checkpoint, and rewrites the report
from the finished runs, so a run made by an earlier camloc gains PxAP without retraining.

    python -m camloc.experiments.reproduce.wsol --out reproduce_wsol_out            # the full plan
    python -m camloc.experiments.reproduce.wsol --out /tmp/q --quick                # a minute
    python -m camloc.experiments.reproduce.wsol --out reproduce_wsol_out --rescore  # no training
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
    epochs: int = 5
    trials: int = 3
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
           ("gt_known", "gt_known_loc_acc"), ("PxAP", "PxAP"), ("cls_error", "top1_cls_error"))
PIXEL = ("PxAP",)  # figures of a benchmark with masks: left out of a summary when a seed lacks them


def summarize(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """``{figure: [mean, spread]}`` over one method's seeds (a pixel figure only when every seed has it)."""
    out: dict[str, list[float]] = {}
    for name, key in FIGURES:
        if key in PIXEL and not all(key in r for r in runs):
            continue
        vals = [100.0 - r["top1_loc_error"] if key is None else r[key] for r in runs]
        out[name] = list(_spread(vals))
    return out


def _data(plan: Plan, regime: str, out: Path, log: Any, strict: bool = False) -> Path:
    """The regime's benchmark under ``out/data``: written when missing, given its masks when an
    earlier camloc wrote it without them (a benchmark that cannot be given its masks goes on
    without pixel figures, or raises when ``strict``)."""
    from camloc.errors import CamlocError
    from camloc.experiments.fashion_loc import add_masks, has_masks, write_benchmark

    data = out / "data" / regime
    if not (data / "benchmark.json").is_file():
        write_benchmark(data, regime, {"train": plan.train, "val": plan.val, "test": plan.test}, seed=0,
                        progress=False)
    elif not has_masks(data):
        log(f"{data}: adding the masks (every stored image checked against the regenerated one)")
        try:
            add_masks(data, progress=False)
        except CamlocError as err:
            if strict:
                raise
            log(f"no masks, so no pixel figures: {err}")
    return data


def pixel_figures(run_dir: Path, test: Any, log: Any = None) -> dict[str, Any]:
    """A finished seed run's test metrics (``run_dir/test.json``), with the pixel figures it lacks
    computed from its checkpoint (``last.pt``) on ``test`` when ``test`` has masks, and written
    back to ``test.json``. Nothing is retrained; the other figures are kept as they were."""
    from camloc.io import atomic_write_json
    from camloc.train.search import evaluate_run

    record = json.loads((run_dir / "test.json").read_text())
    metrics = record["metrics"]
    missing = [k for k in PIXEL if k not in metrics]
    if not missing or not any(s.masks or s.mask for s in test.samples):
        return metrics
    checkpoint = run_dir / "last.pt"
    if not checkpoint.is_file():
        if log:
            log(f"{run_dir}: no last.pt to compute {', '.join(missing)} from; left without")
        return metrics
    figures, _ = evaluate_run(checkpoint, test)
    if log and abs(figures["MaxBoxAccV2"] - metrics["MaxBoxAccV2"]) > 1e-6:
        log(f"{run_dir}: warning: last.pt gives MaxBoxAccV2 {figures['MaxBoxAccV2']:.4f}, test.json "
            f"{metrics['MaxBoxAccV2']:.4f} (not the checkpoint that was tested?)")
    metrics.update({k: figures[k] for k in missing if k in figures})
    atomic_write_json(run_dir / "test.json", {**record, "metrics": metrics})
    return metrics


def pxap_floor(test: Any) -> float | None:
    """PxAP of a constant map on ``test`` (every pixel one score): the foreground share of the
    scored pixels, in percent; what a map that knows nothing scores. ``None`` without masks."""
    from camloc.metrics.pxap import ground_truth

    with_masks = [s for s in test.samples if s.masks or s.mask]
    if not with_masks:
        return None
    fg = scored = 0
    for s in with_masks:
        gt = ground_truth(s.masks or [s.mask], s.ignore)
        fg += int((gt == 1).sum())
        scored += int((gt != 255).sum())
    return 100.0 * fg / scored


def _method_result(found: dict[str, Any], runs: list[dict[str, Any]], minutes: float | None) -> dict[str, Any]:
    return {"best_lr": found["best_lr"], "best_wsol_args": found["best_wsol_args"],
            "best_val": found["best_val"]["MaxBoxAccV2"], "failed_trials": found["failed"],
            "summary": summarize(runs), "seeds": [r["seed"] for r in runs],
            "fewshot": [r["fewshot"] for r in runs], "minutes": minutes}


def _verdicts(result: dict[str, Any]) -> None:
    """The few-shot row and each method's ``beats_cam`` (``None`` with fewer than two seeds)."""
    cam = result["methods"].get("cam")
    if cam is None:
        return
    fs = cam["fewshot"]
    result["fewshot"] = {f"BoxAcc@{d}": list(_spread([f[f"BoxAcc@{d}"] for f in fs])) for d in (30, 50, 70)}
    result["fewshot"]["BoxAcc"] = list(_spread([f["BoxAcc"] for f in fs]))
    c_mean, c_sd = cam["summary"]["MaxBoxAccV2"]
    for method, r in result["methods"].items():
        m_mean, m_sd = r["summary"]["MaxBoxAccV2"]
        # one seed has no spread to beat: no verdict
        few = min(len(r["seeds"]), len(cam["seeds"])) < 2
        r["beats_cam"] = None if few else (method != "cam" and m_mean - c_mean > m_sd + c_sd)


def run_regime(plan: Plan, regime: str, out: Path, log: Any) -> dict[str, Any]:
    from camloc.train.data import open_split
    from camloc.train.search import SearchOptions, box_subset, search, train_and_test

    data = _data(plan, regime, out, log)
    cfg = _config(plan, data)
    val = box_subset(open_split(cfg, "val"), plan.val_per_class, str(data))
    test = open_split(cfg, "test")
    result: dict[str, Any] = {"methods": {}, "pxap_constant_map": pxap_floor(test)}
    for method in plan.methods:
        t0 = time.perf_counter()
        base = out / regime / method
        found = search(cfg, SearchOptions(method=method, trials=plan.trials, out=str(base / "search"),
                                          val_per_class=plan.val_per_class, final=False, seed=0))
        runs = []
        for seed in plan.seeds:
            done = base / f"seed{seed}" / "test.json"
            if done.is_file():
                runs.append(pixel_figures(done.parent, test, log))
                continue
            runs.append(train_and_test(cfg, method, found["best_lr"], found["best_wsol_args"] or {}, seed,
                                       base / f"seed{seed}", val, test))
        result["methods"][method] = _method_result(found, runs, round((time.perf_counter() - t0) / 60, 2))
        log(f"{regime} {method}: test MaxBoxAccV2 {result['methods'][method]['summary']['MaxBoxAccV2'][0]:.2f}")
    _verdicts(result)
    return result


def _seed_of(path: Path) -> int:
    tail = path.parent.name[len("seed"):]
    return int(tail) if tail.isdigit() else -1


def rescore_regime(regime: str, out: Path, log: Any, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """The regime's result rebuilt from its finished runs (``out/<regime>/<method>/seed*/test.json``
    and the search's ``result.json``), each given the pixel figures it lacks; no training. Methods
    without a finished search or seed run are left out. ``before`` (the regime's earlier result)
    lends the methods' minutes."""
    from camloc.train.data import open_split

    data = _data(FULL, regime, out, log, strict=True)  # exists: only its masks may be added
    test = open_split(_config(FULL, data), "test")
    result: dict[str, Any] = {"methods": {}, "pxap_constant_map": pxap_floor(test)}
    for method in METHODS:
        base = out / regime / method
        found_at = base / "search" / "result.json"
        done = sorted(base.glob("seed*/test.json"), key=_seed_of)
        if not found_at.is_file() or not done:
            continue
        runs = [pixel_figures(p.parent, test, log) for p in done]
        minutes = ((before or {}).get("methods", {}).get(method) or {}).get("minutes")
        result["methods"][method] = _method_result(json.loads(found_at.read_text()), runs, minutes)
        summary = result["methods"][method]["summary"]
        pxap = f", PxAP {summary['PxAP'][0]:.2f}" if "PxAP" in summary else ""
        log(f"{regime} {method}: {len(runs)} finished seed runs rescored; MaxBoxAccV2 "
            f"{summary['MaxBoxAccV2'][0]:.2f}{pxap}")
    _verdicts(result)
    return result


def rescore(out: Path, plan: Plan, log: Any) -> tuple[Plan, dict[str, Any], float | None]:
    """Every regime with a benchmark under ``out/data`` rescored (:func:`rescore_regime`); the plan
    and minutes are the earlier report's when ``out/report.json`` exists, else ``plan`` (the flags
    given: the run's own) and ``None`` (not recorded)."""
    earlier: dict[str, Any] = {}
    if (out / "report.json").is_file():
        earlier = json.loads((out / "report.json").read_text())
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in earlier.get("plan", {}).items()
                  if k in Plan.__dataclass_fields__}
        plan = replace(plan, **fields)
    found = sorted(p.parent.name for p in (out / "data").glob("*/benchmark.json"))
    regimes = [r for r in plan.regimes if r in found] + [r for r in found if r not in plan.regimes]
    if not regimes:
        raise FileNotFoundError(f"{out}: no benchmark under data/ to rescore (is it a reproduce-wsol output?)")
    results = {}
    for regime in regimes:
        results[regime] = rescore_regime(regime, out, log, earlier.get("results", {}).get(regime))
    return plan, results, earlier.get("minutes")


def report_markdown(plan: Plan, results: dict[str, Any], minutes: float | None) -> str:
    took = "time not recorded" if minutes is None else f"{minutes:.1f} minutes in all"
    lines = [f"Plan: {plan.train} train / {plan.val} val ({plan.val_per_class} box-labelled per class used) / "
             f"{plan.test} test canvases per regime; fashion_gap widths {list(plan.widths)}, head "
             f"{plan.head_channels}; {plan.epochs} epochs; {plan.trials} random-search trials per method; seeds "
             f"{list(plan.seeds)}; {took}.", ""]
    titles = {"MaxBoxAccV2@30": "MaxBoxAccV2@30", "MaxBoxAccV2@50": "@50", "MaxBoxAccV2@70": "@70",
              "MaxBoxAccV2": "mean", "top1_loc": "top-1 loc", "gt_known": "GT-known", "PxAP": "PxAP",
              "cls_error": "cls error"}
    for regime, res in results.items():
        # a pixel figure gets a column when some method has it ("-" where a method lacks it)
        shown = [n for n, key in FIGURES if key not in PIXEL or any(n in r["summary"] for r in res["methods"].values())]
        lines += [f"**{regime}** (test; mean ± spread over seeds)", "",
                  "| method | " + " | ".join(titles[n] for n in shown) + " | beats CAM? |",
                  "|---|" + "---|" * (len(shown) + 1)]
        for method, r in res["methods"].items():
            s = r["summary"]
            cells = [f"{s[n][0]:.1f} ± {s[n][1]:.1f}" if n in s else "-" for n in shown]
            beats = r.get("beats_cam")
            verdict = "-" if method == "cam" else ("n/a (1 seed)" if beats is None else ("yes" if beats else "no"))
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {verdict} |")
        if "fewshot" in res:
            f = res["fewshot"]
            lines.append("| few-shot box regressor (K/class) | " + " | ".join(
                f"{f[k][0]:.1f} ± {f[k][1]:.1f}" for k in ("BoxAcc@30", "BoxAcc@50", "BoxAcc@70", "BoxAcc"))
                + " | -" * (len(shown) - 4 + 1) + " |")
        if res.get("pxap_constant_map") is not None and "PxAP" in shown:
            lines += ["", f"PxAP of a constant map (the test masks' foreground share): {res['pxap_constant_map']:.1f}."]
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
    parser.add_argument("--rescore", action="store_true",
                        help="train nothing: add the benchmark's masks if missing, compute the pixel figures "
                             "(PxAP) of every finished seed run from its checkpoint, rewrite the report (the plan "
                             "of DIR/report.json; without one, give the run's own plan flags)")
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

    if args.rescore:
        from camloc.errors import CamlocError

        try:
            plan, results, minutes = rescore(out, plan, log)
        except (CamlocError, FileNotFoundError) as err:
            print(f"reproduce-wsol: error: {err}", file=sys.stderr)
            return 1
        load = json.loads((out / "report.json").read_text()).get("load") if (out / "report.json").is_file() else None
        atomic_write_json(out / "report.json", {"plan": asdict(plan), "minutes": minutes, "load": load,
                                                "results": results, "rescored_load": os.getloadavg()})
        text = report_markdown(plan, results, minutes)
        atomic_write_text(out / "report.md", text + "\n")
        print(text)
        return 0
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
