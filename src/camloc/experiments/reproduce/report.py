"""Tables and figures of a reproduction run (see :mod:`camloc.experiments.reproduce`).

``report.md`` holds the Markdown section (the two tables, the baseline and the verdicts on the
paper's orderings, mean +- sample std over seeds); the figures are drawn by
:func:`camloc.viz.grids.reproduction_examples` and :func:`camloc.viz.plots.reproduction_curves`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from camloc.io import atomic_write_text

NET_LABELS = {"gap": "GAP net (3x3 conv, GAP, linear)", "gmp": "GMP net (3x3 conv, GMP, linear)",
              "fc": "FC net (same trunk, FC head)"}
FIGURE_METHODS = ("cam_gap_relu", "cam_gmp_relu", "backprop_gap")
FIGURE_TITLES = {"cam_gap_relu": "CAM, GAP net", "cam_gmp_relu": "CAM, GMP net", "backprop_gap": "Backprop, GAP net"}
CAM_KEYS = ("cam_gap", "cam_gap_relu", "cam_gmp", "cam_gmp_relu")


def pm(stat: dict[str, float], digits: int = 1) -> str:
    """``mean ± std`` of a :func:`camloc.experiments.reproduce.scores.summarize` record."""
    if stat.get("n", 1) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def _verdict(rec: dict[str, Any], what: str) -> str:
    holds, of, diff = rec["holds"], rec["of"], rec["mean_diff"]
    word = "holds" if holds == of else ("does not hold" if holds == 0 else "is mixed")
    return f"{what} **{word}** ({holds}/{of} seeds, mean difference {diff:+.1f} points)"


def report_markdown(results: dict[str, Any], command: str = "make reproduce") -> str:
    """The "Reproducing the paper on CPU" section, from ``results.json``'s content."""
    plan = results["plan"]
    regimes = list(results["regimes"])
    seeds = plan["seeds"]
    t = results["timing"]
    lines = [
        "## Reproducing the paper on CPU", "",
        f"Command: `{command}` (= `.venv/bin/python -m camloc.cli reproduce --out reproduce_out`); "
        f"{t['total_seconds'] / 60:.1f} min wall clock ({t['cpu_seconds'] / 60:.1f} CPU-min in the main process), "
        f"{t['threads']} threads (load average at the end {t.get('load_average_at_end', ['?'])[0]}). Mean ± sample std over seeds {', '.join(map(str, seeds))}; "
        f"one test set per regime, the same for every seed and method.", "",
    ]
    for r in regimes:
        b = results["regimes"][r]["benchmark"]
        g = b["regime"]
        clutter = (f"over {g['clutter']} fragments ({g['fragment_min']}–{g['fragment_max']} px) of other items"
                   if g["clutter"] else "no clutter")
        s = b["splits"]
        lines.append(f"- **{r}**: {g['canvas']}×{g['canvas']} canvas, item {g['item_min']}–{g['item_max']} px "
                     f"(longer side), {clutter}; {s['train']['images']} train / {s['val']['images']} val / "
                     f"{s['test']['images']} test images; ground-truth boxes cover "
                     f"{100 * s['test']['mean_box_area_fraction']:.0f} % of the canvas on average.")
    side = results.get("map_side", 16)
    opt = ("AdamW" if plan.get("optimizer") == "adamw" else f"SGD (Nesterov, momentum {plan['momentum']})")
    lines += ["", f"Nets: a trunk of {len(plan['widths'])} 3×3 conv-BN-ReLU stages ({'/'.join(map(str, plan['widths']))} "
              f"channels, 2×2 max-pooling, maps of stride {plan.get('stride') or 2 ** (len(plan['widths']) - 1)}: "
              f"{side}×{side}), then a 3×3 conv of {plan['head_channels']} units (BN, ReLU), GAP or GMP, dropout "
              f"{plan.get('dropout', 0)} and one linear layer; or, on the same trunk, an FC head (2×2 max-pool, "
              f"FC {plan['fc_hidden']}, FC {plan['fc_hidden']}, dropout {plan['fc_dropout']}, linear). Trained from "
              f"image labels only: {plan['epochs']} epochs, batch {plan['batch_size']}, {opt}, peak lr {plan['lr']}, "
              f"weight decay {plan['weight_decay']}, {100 * plan['warmup']:.0f} % warm-up then cosine, horizontal "
              f"flips, bfloat16 autocast on CPU.", ""]

    lines += ["### Table 1 analogue: classification top-1 error (%)", "",
              "| network | " + " | ".join(regimes) + " |", "| --- | " + " | ".join("---:" for _ in regimes) + " |"]
    for kind, label in NET_LABELS.items():
        lines.append(f"| {label} | " + " | ".join(pm(results["regimes"][r]["summary"]["classification"][kind])
                                                  for r in regimes) + " |")
    lines.append("")

    labels = results["methods"]
    for r in regimes:
        summ = results["regimes"][r]["summary"]["methods"]
        base = results["regimes"][r]["baseline"]
        lines += [f"### Table 2 analogue, {r}: localization (%)", "",
                  "| method | top-1 loc. error (20 % rule) | GT-known loc. (20 % rule) | MaxBoxAcc (best τ) | best τ | MaxBoxAccV2 |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for key, label in labels.items():
            m = summ[key]
            lines.append(f"| {label} | {pm(m['top1_loc_error'])} | {pm(m['gt_known_loc_acc'])} | "
                         f"{pm(m['MaxBoxAcc'])} | {pm(m['MaxBoxAcc_threshold'], 2)} | {pm(m['MaxBoxAccV2'])} |")
        lines.append(f"| centered box (size tuned on the test set) | – | {base['gt_known_loc_acc']:.1f} | "
                     f"{base['MaxBoxAcc']:.1f} | – | {base['MaxBoxAccV2']:.1f} |")
        lines.append("")

    lines += ["### The paper's orderings, regime by regime", "",
              "Each claim is tested per seed on the same test set; *holds* means in every seed.", ""]
    for r in regimes:
        o = results["regimes"][r]["summary"]["orderings"]
        summ = results["regimes"][r]["summary"]["methods"]
        best = max(CAM_KEYS, key=lambda k: summ[k]["MaxBoxAcc"]["mean"])
        base = results["regimes"][r]["baseline"]["MaxBoxAcc"]
        best_val = summ[best]["MaxBoxAcc"]["mean"]
        lines += [f"**{r}**:", ""]
        for suffix, how in (("", "signed maps, min-max"), ("_relu", "positive parts, of the max")):
            lines.append(
                f"- GAP vs GMP ({how}): "
                + _verdict(o[f"gap_vs_gmp{suffix}_loc_MaxBoxAcc"], "GAP better in MaxBoxAcc") + "; "
                + _verdict(o[f"gap_vs_gmp{suffix}_loc_gt_known_loc_acc"], "in GT-known loc. with the 20 % rule") + "; "
                + _verdict(o[f"gap_vs_gmp{suffix}_loc_top1_loc_error"], "in top-1 loc. error") + ".")
        for suffix, how in (("", "signed, min-max"), ("_relu", "positive part")):
            lines.append(
                f"- CAM on the GAP net ({how}) vs Backprop: "
                + _verdict(o[f"cam{suffix}_vs_backprop_gap_MaxBoxAcc"], "better than Backprop on the GAP net in MaxBoxAcc") + "; "
                + _verdict(o[f"cam{suffix}_vs_backprop_gap_gt_known_loc_acc"], "with the 20 % rule") + "; "
                + _verdict(o[f"cam{suffix}_vs_backprop_fc_MaxBoxAcc"], "better than Backprop on the FC net in MaxBoxAcc") + ".")
        lines += [
            f"- Classification: GMP − GAP top-1 error {o['gap_vs_gmp_classification']['mean_diff']:+.1f} points "
            f"(GAP the better classifier in {o['gap_vs_gmp_classification']['gap_better']}/{o['gap_vs_gmp_classification']['of']} seeds); "
            f"GAP − FC {o['gap_vs_fc_classification']['mean_diff']:+.1f} points "
            f"(GAP the better classifier in {o['gap_vs_fc_classification']['gap_better']}/"
            f"{o['gap_vs_fc_classification']['of']} seeds).",
            f"- Best CAM configuration: {labels[best]}, MaxBoxAcc {best_val:.1f} % = "
            f"{best_val / max(base, 1e-9):.1f}× the centered box ({base:.1f} %).", "",
        ]
    for r in regimes:
        lines += [f"![{r} examples](reproduce_examples_{r}.png)", ""]
    lines += ["![threshold curves](reproduce_threshold_curves.png)", ""]
    return "\n".join(lines)


def write_report(out: Path, results: dict[str, Any], examples: dict[str, Any], plan: Any,
                 docs: str | os.PathLike | None = None) -> list[str]:
    """Write ``report.md`` and the figures (drawn by :mod:`camloc.viz`) into ``out`` (and the figures
    into ``docs``)."""
    from camloc.data.fashion_mnist import CLASSES
    from camloc.viz.grids import reproduction_examples
    from camloc.viz.plots import reproduction_curves

    dirs = [out] + ([Path(docs)] if docs else [])
    written = []
    for regime, ex in examples.items():
        seed0 = results["regimes"][regime]["seeds"][str(plan.seeds[0])]["methods"]
        taus = {k: seed0[k]["MaxBoxAcc_threshold"] for k in FIGURE_METHODS}
        name = f"reproduce_examples_{regime}.png"
        titles = {k: FIGURE_TITLES.get(k, results["methods"][k]) for k in FIGURE_METHODS}
        reproduction_examples([d / name for d in dirs], regime, ex["images"], ex["maps"], taus, titles, CLASSES,
                              plan.figure_rows)
        written.append(name)
    reproduction_curves([d / "reproduce_threshold_curves.png" for d in dirs], results)
    written.append("reproduce_threshold_curves.png")
    atomic_write_text(out / "report.md", report_markdown(results))
    written.append("report.md")
    return written
