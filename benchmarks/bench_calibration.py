"""Calibrated scores (issue 24): the temperature of each embedded net's scores, per geometry, fitted on
the 500 real ImageNet photos of ``../shared/data/imagenet-samples`` and measured on photos it was not
fitted on.

Cross-fit: the photos in two halves (even and odd rows of ``labels.csv``); a temperature fitted on one
half (least log loss, :func:`camloc.scores.fit_temperature`) scores the other half, and the reverse;
the ECE (15 bins, top-1) and log loss are then taken over all 500 held-out scores, before (T = 1) and
after. Top-1 and top-5 are unchanged by construction (one positive factor keeps the logits' order);
the table shows them. The temperature fitted on all 500 photos is the one the package ships
(``src/camloc/temperatures.json``, written by the full run).

    python -m benchmarks calibration          # the full run: BENCHMARKS.md and temperatures.json
    python -m benchmarks.bench_calibration --quick   # 40 photos, Lite0 only, nothing written
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenet-samples"
SHIPPED = Path(__file__).resolve().parent.parent / "src" / "camloc" / "temperatures.json"
# (model, geometry): each embedded net at localize's default geometry for it, and evaluate's squash
CONFIGS = [
    ("efficientnet_lite1", "aspect:288"),  # the default net and side
    ("efficientnet_lite1", "aspect:256"),  # --model efficientnet_lite1 (its own side, to 32)
    ("efficientnet_lite1", "squash"),
    ("efficientnet_lite0", "aspect:224"),
    ("efficientnet_lite0", "squash"),
    ("efficientnet_lite2", "aspect:256"),
    ("efficientnet_lite2", "squash"),
]


def samples(root: Path = DATA) -> list[tuple[str, int]]:
    with open(root / "labels.csv", newline="") as f:
        return [(str(root / "images" / r["file"]), int(r["class_index"])) for r in csv.DictReader(f)]


def cross_fit(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Held-out figures: each half scored with the temperature fitted on the other."""
    from camloc import scores

    halves = [np.arange(len(labels)) % 2 == h for h in (0, 1)]
    held = np.zeros_like(logits)
    temps = []
    for fit, test in ((halves[0], halves[1]), (halves[1], halves[0])):
        t = scores.fit_temperature(logits[fit], labels[fit])
        temps.append(t)
        held[test] = logits[test] / t
    before = scores.report(logits, labels, 1.0)
    after = scores.report(held, labels, 1.0)
    order_same = bool((np.argsort(-logits, axis=1)[:, :5] == np.argsort(-held, axis=1)[:, :5]).all())
    return {"n": len(labels), "t_halves": temps, "t_all": scores.fit_temperature(logits, labels),
            "top1": before["top1"], "top5": before["top5"], "top1_after": after["top1"], "top5_after": after["top5"],
            "ece_before": before["ece_before"], "ece_after": after["ece_before"],
            "nll_before": before["log_loss_before"], "nll_after": after["log_loss_before"], "order_same": order_same,
            "mean_conf_before": float(scores.softmax(logits).max(axis=1).mean()),
            "mean_conf_after": float(scores.softmax(held).max(axis=1).mean())}


def measure(configs, items, progress: bool = False) -> list[dict]:
    import camloc
    from camloc.calibrate import collect_logits, model_digest
    from camloc.pixels.geometry import parse_resize

    rows, nets = [], {}
    for model, geometry in configs:
        net = nets.setdefault(model, camloc.load_model(model))
        logits, labels, bad = collect_logits(net, items, parse_resize(geometry), progress=progress)
        row = {"model": model, "geometry": geometry, "skipped": len(bad), "sha": model_digest(net),
               **cross_fit(logits, labels)}
        rows.append(row)
        print(f"{model} {geometry}: T {row['t_all']:.3f} ECE {row['ece_before']:.3f} -> {row['ece_after']:.3f}",
              flush=True)
    return rows


def shipped(rows: list[dict]) -> dict:
    """``temperatures.json``: per embedded net, its weights hash and per views the temperature fitted
    on all the photos."""
    from camloc.calibrate import views_of
    from camloc.pixels.geometry import parse_resize

    out: dict = {"fitted_on": "../shared/data/imagenet-samples (500 real ImageNet photos, labels.csv)",
                 "command": "python -m benchmarks calibration", "models": {}}
    for r in rows:
        entry = out["models"].setdefault(r["model"], {"weights_sha256": r["sha"], "temperatures": {}})
        entry["temperatures"][views_of(parse_resize(r["geometry"]))] = {
            "temperature": round(r["t_all"], 4), "num_images": r["n"],
            "held_out_ece_before": round(r["ece_before"], 4), "held_out_ece_after": round(r["ece_after"], 4)}
    return out


def table(rows: list[dict]) -> list[str]:
    lines = ["| net | geometry | T (all) | T (halves) | top-1 % | top-5 % | mean top-1 score | ECE before | ECE after "
             "| log loss before | log loss after |",
             "|---|---|---:|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        same = "" if r["order_same"] else " (ranking changed!)"
        lines.append(
            f"| `{r['model']}` | {r['geometry']} | {r['t_all']:.3f} | {r['t_halves'][0]:.3f}, {r['t_halves'][1]:.3f} | "
            f"{r['top1']:.1f} | {r['top5']:.1f}{same} | {r['mean_conf_before']:.3f} -> {r['mean_conf_after']:.3f} | "
            f"{r['ece_before']:.3f} | **{r['ece_after']:.3f}** | {r['nll_before']:.3f} | {r['nll_after']:.3f} |")
    return lines


def main(quick: bool | None = None) -> str:
    from benchmarks.timing import machine_line
    from benchmarks.timing import quick as quick_run

    quick = quick_run() if quick is None else quick

    if not DATA.is_dir():
        return "## Calibrated scores\n\nskipped: ../shared/data/imagenet-samples is not there."
    items = samples()
    if quick:
        rows = measure([("efficientnet_lite0", "aspect:224")], items[:40])
        return "\n".join(["## Calibrated scores (quick run: 40 photos, figures meaningless)", "", *table(rows)])
    rows = measure(CONFIGS, items, progress=None)
    from camloc.io import atomic_write_text

    atomic_write_text(SHIPPED, json.dumps(shipped(rows), indent=1) + "\n")
    default = rows[0]
    lines = [
        "## Calibrated scores: temperature per net and geometry (issue 24)",
        "",
        f"Command: `.venv/bin/python -m benchmarks calibration` ({machine_line()}). The {default['n']} real ImageNet "
        "photos of `../shared/data/imagenet-samples`, cross-fitted: a temperature fitted on one half (even rows of "
        "`labels.csv`; least log loss) scores the other half (odd rows) and the reverse, so every figure *after* "
        "is on photos the temperature was not fitted on. ECE: expected calibration error of the top-1 score, 15 "
        "equal bins; log loss in nats. *T (all)*: fitted on all the photos, what the package ships "
        "(`src/camloc/temperatures.json`) and a record's `score` uses (`score = softmax(logit / T)`, `logit` raw). "
        "Top-1 and top-5 are those of the raw logits and unchanged after (one positive factor keeps the order; "
        "checked per photo).",
        "",
        *table(rows),
        "",
        f"The default (`{default['model']}` at {default['geometry']}): ECE {default['ece_before']:.3f} -> "
        f"{default['ece_after']:.3f} on photos not fitted on (goal <= 0.05), top-1 {default['top1']:.1f} % "
        "unchanged.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(quick="--quick" in sys.argv[1:]))
