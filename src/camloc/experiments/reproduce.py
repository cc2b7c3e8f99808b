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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from camloc.experiments.fashion_loc import REGIMES, write_benchmark
from camloc.data.loader import Batch, Normalize
from camloc.io import atomic_write_json, warn_null
from camloc.models.checkpoint import read_checkpoint, save_checkpoint
from camloc.models.net import CamNet
from camloc.models.registry import load_model
from camloc.train import TrainConfig, _Dist, train_epoch

NETS = ("gap", "gmp", "fc")


@dataclass(frozen=True)
class Method:
    """A map method applied to one of the trained nets."""

    key: str
    label: str
    net: str  # "gap", "gmp" or "fc"
    kind: str  # "cam", "cam_relu", "backprop" or "gradcam"


METHODS: tuple[Method, ...] = (
    Method("cam_gap", "CAM, GAP net (signed map, min-max)", "gap", "cam"),
    Method("cam_gap_relu", "CAM, GAP net (positive part, of the max)", "gap", "cam_relu"),
    Method("cam_gmp", "CAM, GMP net (signed map, min-max)", "gmp", "cam"),
    Method("cam_gmp_relu", "CAM, GMP net (positive part, of the max)", "gmp", "cam_relu"),
    Method("backprop_gap", "Backprop, GAP net", "gap", "backprop"),
    Method("backprop_fc", "Backprop, FC net", "fc", "backprop"),
    Method("gradcam_gap", "Grad-CAM, GAP net", "gap", "gradcam"),
    Method("gradcam_fc", "Grad-CAM, FC net", "fc", "gradcam"),
)


@dataclass(frozen=True)
class Plan:
    """What a reproduction run does (the full run's defaults fit 30 minutes on 2 CPU cores)."""

    regimes: tuple[str, ...] = ("clean", "cluttered")
    seeds: tuple[int, ...] = (0, 1, 2)
    data_seed: int = 0
    train: int = 10000
    val: int = 1000
    test: int = 1500
    epochs: int = 4
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.05
    warmup: float = 0.15
    clip: float = 0.0
    widths: tuple[int, ...] = (16, 32, 64)
    stride: int = 2
    head_channels: int = 64
    dropout: float = 0.5
    fc_hidden: int = 256
    fc_dropout: float = 0.2
    bf16: bool = True
    box_threshold: float = 0.2
    threshold_step: float = 0.01
    figure_rows: int = 6
    workers: int = 0  # scoring processes; 0: one per CPU

    def model_args(self, net: str) -> dict[str, Any]:
        args: dict[str, Any] = {"widths": list(self.widths), "stride": self.stride, "bf16": self.bf16}
        if net == "fc":
            args.update(fc_hidden=self.fc_hidden, dropout=self.fc_dropout)
        else:
            args.update(head_channels=self.head_channels, dropout=self.dropout)
        return args

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def training_key(self) -> dict[str, Any]:
        """The fields a trained net depends on (a rerun reuses a checkpoint with the same key)."""
        keep = ("data_seed", "train", "val", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                "warmup", "clip", "widths", "stride", "head_channels", "dropout", "fc_hidden", "fc_dropout", "bf16")
        return {k: v for k, v in self.to_dict().items() if k in keep}


FULL = Plan()
QUICK = Plan(regimes=("cluttered",), seeds=(0,), train=3000, val=200, test=300, epochs=4, figure_rows=3)


# ------------------------------------------------------------------------------------------ data

@dataclass
class Images:
    """A split held in memory: ``gray (N, S, S)`` uint8, labels ``(N,)``, boxes ``(N, 4)``."""

    gray: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray | slice | torch.Tensor, net: CamNet) -> torch.Tensor:
        """Net inputs for ``index``: exactly ``net.preprocess`` of the (grey RGB) images."""
        return to_input(torch.from_numpy(self.gray[index]), net)


def to_input(gray: torch.Tensor, net: CamNet) -> torch.Tensor:
    """``(B, S, S)`` uint8 grey canvases -> ``(B, 3, S, S)`` normalized like ``net.preprocess``
    (the canvases are already at the net's input size, so no resize)."""
    pre = net.preprocessing
    x = gray.float().div_(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return (x - mean) / std


def read_images(folder: str | os.PathLike) -> Images:
    """Read a generated split back from disk (``read_wsol`` + ``load_image``)."""
    from camloc.data.images import load_image
    from camloc.data.wsol import read_wsol

    split = read_wsol(folder)
    if split.skipped:
        raise ValueError(f"{folder}: {len(split.skipped)} images left out; first: {split.skipped[0]}")
    first = np.asarray(load_image(split.samples[0].path))
    gray = np.zeros((len(split),) + first.shape[:2], np.uint8)
    for i, s in enumerate(split.samples):
        rgb = np.asarray(load_image(s.path))
        if rgb.shape != first.shape:
            raise ValueError(f"{s.path}: size {rgb.shape[1]}x{rgb.shape[0]} differs from the split's {first.shape[1]}x{first.shape[0]}")
        gray[i] = rgb[..., 0]
    labels = np.array([s.label for s in split.samples], np.int64)
    boxes = np.array([s.boxes[0] if s.boxes else [0, 0, 0, 0] for s in split.samples], np.int64)
    return Images(gray, labels, boxes, [s.image_id for s in split.samples])


def prepare_data(out: Path, regime: str, plan: Plan, progress: bool) -> Path:
    """Generate ``out/data/<regime>`` unless the same benchmark is already there."""
    folder = out / "data" / regime
    sizes = {"train": plan.train, "val": plan.val, "test": plan.test}
    meta = folder / "benchmark.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        same = (info.get("seed") == plan.data_seed and info.get("regime") == dataclasses.asdict(REGIMES[regime])
                and {k: v.get("images") for k, v in info.get("splits", {}).items()} == sizes)
        if same:
            return folder
    write_benchmark(folder, regime, sizes, seed=plan.data_seed, progress=progress)
    return folder


# ------------------------------------------------------------------------------------------ training

def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of the steps (from 0.1x), then a cosine
    from 1x to 0 at the last step."""
    w = max(1, int(round(warmup * total)))
    if step < w:
        return 0.1 + 0.9 * step / w
    return 0.5 * (1.0 + math.cos(math.pi * (step - w) / max(1, total - w)))


def train_net(net_kind: str, train: Images, val: Images, plan: Plan, seed: int,
              log: Callable[[str], None], progress: bool) -> tuple[CamNet, list[dict[str, float]]]:
    """Train ``fashion_<net_kind>`` from image labels only (boxes are never read).

    Each epoch is :func:`camloc.train.train_epoch` over the canvases held in memory: AdamW (or
    SGD with Nesterov momentum), weight decay, a per-step warm-up + cosine schedule, optional
    gradient-norm clipping, random horizontal flips; the initialization, the order and the flips
    depend only on ``seed``.
    Returns the net (in eval mode) and one row of metrics per epoch.
    """
    torch.manual_seed(seed)
    net = load_model(f"fashion_{net_kind}", **plan.model_args(net_kind))
    module = net.module
    if plan.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(module.parameters(), lr=plan.lr, momentum=plan.momentum,
                                                     nesterov=True, weight_decay=plan.weight_decay)
    elif plan.optimizer == "adamw":
        opt = torch.optim.AdamW(module.parameters(), lr=plan.lr, weight_decay=plan.weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {plan.optimizer!r}")
    per_epoch = len(train) // plan.batch_size
    if per_epoch == 0:
        raise ValueError(f"{len(train)} training images is less than one batch of {plan.batch_size}")
    total = per_epoch * plan.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, plan.warmup))
    g = torch.Generator().manual_seed(seed)
    labels = torch.from_numpy(train.labels)
    cfg = TrainConfig(epochs=plan.epochs, crop=int(train.gray.shape[1]), progress=progress)
    normalize = Normalize(net.preprocessing)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    rows = []
    if not len(val):
        warn_null(f"fashion_{net_kind} seed {seed}: the validation error without validation images")
    for epoch in range(plan.epochs):
        order = torch.randperm(len(train), generator=g)
        flips = torch.rand(len(train), generator=g) < 0.5
        t0 = time.perf_counter()
        tally = train_epoch(module, _Batches(train.gray, labels, order, flips, plan.batch_size), opt, scaler, cfg,
                            _Dist(), normalize, False, epoch, clip=plan.clip, on_step=sched.step)
        seconds = time.perf_counter() - t0
        n = tally.n
        loss, err = float(tally.loss) / n, 100.0 * (1 - float(tally.top1) / n)
        val_err = 100.0 * (1.0 - float((predict(net, val) == torch.from_numpy(val.labels)).float().mean())) \
            if len(val) else None
        rows.append({"epoch": epoch + 1, "train_loss": loss, "train_top1_error": err,
                     "val_top1_error": val_err, "seconds": round(seconds, 2)})
        log(f"  {net_kind} seed {seed} epoch {epoch + 1}/{plan.epochs}: loss {loss:.3f}, "
            f"train error {err:.1f}%, val error {'-' if val_err is None else f'{val_err:.1f}%'}, "
            f"{n / seconds:.0f} images/s")
    module.eval()
    return net, rows


class _Batches:
    """One epoch of training batches from memory, in ``order``, each canvas mirrored where
    ``flips`` says (full batches only): what :func:`camloc.train.train_epoch` reads."""

    def __init__(self, gray: np.ndarray, labels: torch.Tensor, order: torch.Tensor, flips: torch.Tensor,
                 size: int) -> None:
        self.gray, self.labels, self.order, self.flips, self.size = gray, labels, order, flips, size

    def __len__(self) -> int:
        return len(self.order) // self.size

    def __iter__(self) -> Iterator[Batch]:
        for b in range(len(self)):
            idx = self.order[b * self.size : (b + 1) * self.size]
            gray = torch.from_numpy(self.gray[idx.numpy()])
            gray = torch.where(self.flips[idx][:, None, None], gray.flip(-1), gray)
            yield Batch(gray.unsqueeze(1).expand(-1, 3, -1, -1), self.labels[idx])


@torch.no_grad()
def logits_of(net: CamNet, images: Images, batch: int = 500) -> torch.Tensor:
    net.module.eval()
    return torch.cat([net.module(images.batch(slice(i, i + batch), net)) for i in range(0, len(images), batch)])


def predict(net: CamNet, images: Images) -> torch.Tensor:
    return logits_of(net, images).argmax(1)


def trained_net(net_kind: str, path: Path, train: Images, val: Images, plan: Plan, seed: int,
                log: Callable[[str], None], progress: bool) -> tuple[CamNet, list[dict[str, float]], bool]:
    """The checkpoint at ``path`` when it was trained with this plan and seed, else a fresh training
    (saved there). Returns ``(net, epoch rows, reused)``."""
    key = {**plan.training_key(), "seed": seed, "net": net_kind}
    if path.is_file():
        try:
            data = read_checkpoint(path)
        except ValueError:
            data = {}
        if data.get("reproduce_key") == key:
            net = load_model(path)
            net.module.eval()
            return net, list(data.get("epochs", [])), True
    net, rows = train_net(net_kind, train, val, plan, seed, log, progress)
    save_checkpoint(net, path, extra={"reproduce_key": key, "epochs": rows})
    return net, rows, False


# ------------------------------------------------------------------------------------------ maps

def method_maps(method: Method, net: CamNet, images: Images, batch: int = 250) -> np.ndarray:
    """Raw maps ``(N, h, w)`` of the true class of every image (GT-known).

    ``cam`` keeps the signed map (min-max normalization then puts its minimum, wherever it is,
    at 0); ``cam_relu`` clips it at 0 first, so that thresholds are fractions of the max as the
    paper words its rule ("above 20 % of the max value of the CAM").
    """
    from camloc.extract import cam
    from camloc.methods import Backprop, GradCAM

    out = []
    for i in range(0, len(images), batch):
        x = images.batch(slice(i, i + batch), net)
        y = torch.from_numpy(images.labels[i : i + batch])[:, None]
        if method.kind == "cam":
            maps = cam(net, x, classes=y).maps
        elif method.kind == "cam_relu":
            maps = cam(net, x, classes=y).maps.clamp_min(0)
        elif method.kind == "backprop":
            maps = Backprop()(net, x, y)
        elif method.kind == "gradcam":
            # The GAP net: its CAM feature layer (Grad-CAM is then ReLU(CAM) / hw); the FC net:
            # the output of its conv trunk.
            layer = net.module.trunk if method.net == "fc" else None
            maps = GradCAM(layer=layer)(net, x, y)
        else:  # pragma: no cover - METHODS lists the kinds
            raise ValueError(f"unknown map method kind {method.kind!r}")
        out.append(maps[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def score_maps(maps: np.ndarray, top1: np.ndarray, images: Images, plan: Plan, pool: Any = None) -> dict[str, Any]:
    """All localization metrics of one method's true-class maps.

    ``top1`` is the predicted class of the net the maps come from (for the top-1 error: right
    when the class is right and the 20 %-rule box has IoU >= 0.5). Exactly as ``camloc evaluate``
    scores a dataset: the paper's box comes from the map bilinearly upsampled to the canvas;
    MaxBoxAcc/V2 score the protocol's map (bicubic resize to 224x224, min-max normalized) against
    the ground-truth boxes scaled to 224x224, with the protocol's contour boxes.
    """
    from functools import partial

    from camloc.data.base import Sample
    from camloc.scoring import Pool, Scoring, Tally, tally_chunk

    size = int(images.gray.shape[1])
    scoring = Scoring(box_threshold=plan.box_threshold, threshold_step=plan.threshold_step)
    items = [(Sample(str(i), "", int(label), [gt.tolist()], (size, size)), raw, [int(pred)])
             for i, (raw, pred, label, gt) in enumerate(zip(maps, top1, images.labels, images.boxes))]
    tally = Tally(scoring)
    (pool or Pool(1)).map_merge(partial(tally_chunk, scoring, False), items, tally.merge,
                                chunk=max(1, -(-len(items) // 8)))  # the sums do not depend on the chunks
    loc, v2, v1 = tally.loc, tally.boxacc[True], tally.boxacc[False]
    r_loc, r1, r2 = loc.compute(), v1.compute(), v2.compute()
    return {
        "top1_loc_error": float(r_loc["top1_loc_error"]),
        "gt_known_loc_acc": float(r_loc["gt_known_loc_acc"]),
        "MaxBoxAcc": r1["MaxBoxAcc@50"],
        "MaxBoxAcc_threshold": r1["best_threshold"]["50"],
        "MaxBoxAccV2": r2["MaxBoxAccV2"],
        **{f"MaxBoxAccV2@{d}": r2[f"MaxBoxAcc@{d}"] for d in (30, 50, 70)},
        "curve": [round(float(v), 3) for v in v1.curves()[50]],
    }


def centered_baseline(boxes: np.ndarray, size: int, step: float = 0.05) -> dict[str, Any]:
    """The best centered rectangle: width and height fractions of the canvas on a ``step`` grid,
    chosen on these very boxes (an optimistic baseline; ties go to the higher mean IoU). Returns its GT-known accuracy (IoU >= 0.5,
    %), its MaxBoxAccV2 analogue (mean over IoU 0.3/0.5/0.7 of the best rectangle for each) and
    the chosen size."""
    from camloc.boxes import iou_matrix

    fracs = np.round(np.arange(step, 1.0 + 1e-9, step), 4)
    cands = []
    for fw in fracs:
        for fh in fracs:
            w, h = max(1, int(round(fw * size))), max(1, int(round(fh * size)))
            x0, y0 = (size - w) // 2, (size - h) // 2
            cands.append([x0, y0, x0 + w - 1, y0 + h - 1])
    iou = iou_matrix(np.array(cands), boxes)  # (candidates, images)
    acc = {d: (iou >= d / 100).mean(axis=1) * 100 for d in (30, 50, 70)}
    mean_iou = iou.mean(axis=1)
    best = int(np.lexsort((-mean_iou, -acc[50]))[0])  # most hits at IoU 0.5, then the highest mean IoU
    return {"gt_known_loc_acc": float(acc[50][best]), "MaxBoxAcc": float(acc[50][best]),
            "MaxBoxAccV2": float(np.mean([a.max() for a in acc.values()])), "box": cands[best]}


# ------------------------------------------------------------------------------------------ the run

def evaluate_seed(nets: dict[str, CamNet], test: Images, plan: Plan, progress: bool,
                  pool: Any = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Classification and localization of one seed's three nets on the test set."""
    from camloc.metrics.classification import ClassificationEvaluator

    labels = torch.from_numpy(test.labels)
    top1 = {}
    result: dict[str, Any] = {"classification": {}, "methods": {}}
    for kind, net in nets.items():
        logits = logits_of(net, test)
        ev = ClassificationEvaluator((1,))
        ev.accumulate(logits, labels)
        result["classification"][kind] = float(ev.compute()["top1_cls_error"])
        top1[kind] = logits.argmax(1).numpy()
    all_maps = {}
    for m in tqdm(METHODS, desc="  maps", leave=False, disable=None if progress else True, file=sys.stderr):
        maps = method_maps(m, nets[m.net], test)
        result["methods"][m.key] = score_maps(maps, top1[m.net], test, plan, pool)
        all_maps[m.key] = maps
    return result, all_maps


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def aggregate(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over seeds of every number, and the per-seed verdicts of the paper's orderings."""
    seeds = sorted(per_seed)
    runs = [per_seed[s] for s in seeds]
    out: dict[str, Any] = {"classification": {}, "methods": {}}
    for kind in runs[0]["classification"]:
        out["classification"][kind] = summarize([r["classification"][kind] for r in runs])
    for key in runs[0]["methods"]:
        stats = {}
        for metric, v in runs[0]["methods"][key].items():
            if metric == "curve":
                curves = np.array([r["methods"][key]["curve"] for r in runs])
                stats["curve_mean"] = curves.mean(0).round(3).tolist()
                stats["curve_std"] = (curves.std(0, ddof=1) if len(runs) > 1 else np.zeros(curves.shape[1])).round(3).tolist()
            elif isinstance(v, (int, float)):
                stats[metric] = summarize([r["methods"][key][metric] for r in runs])
        out["methods"][key] = stats
    out["orderings"] = orderings(runs)
    return out


def orderings(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The paper's claims, tested per seed: how many seeds agree, and the mean difference.

    * ``gap_vs_gmp[_relu]_loc_<metric>``: CAM on the GAP net localizes better than on the GMP net
      (signed maps min-max normalized, or their positive parts).
    * ``cam[_relu]_vs_backprop_<net>_<metric>``: CAM (GAP net) localizes better than Backprop.
    * ``gap_vs_gmp_classification``: the GAP net classifies about as well as the GMP net
      (the paper: within about 1 point); here: difference of top-1 errors, GMP minus GAP.
    * ``gap_vs_fc_classification``: the GAP head costs little classification accuracy
      against an FC head; here: difference of top-1 errors, GAP minus FC.
    """
    def compare(a: str, b: str, metric: str, higher_better: bool = True) -> dict[str, Any]:
        diffs = [r["methods"][a][metric] - r["methods"][b][metric] for r in runs]
        if not higher_better:
            diffs = [-d for d in diffs]
        return {"holds": sum(d > 0 for d in diffs), "of": len(diffs), "mean_diff": float(np.mean(diffs)),
                "diffs": [round(d, 3) for d in diffs]}

    out: dict[str, Any] = {}
    for metric, hb in (("MaxBoxAcc", True), ("gt_known_loc_acc", True), ("top1_loc_error", False), ("MaxBoxAccV2", True)):
        for suffix in ("", "_relu"):
            out[f"gap_vs_gmp{suffix}_loc_{metric}"] = compare(f"cam_gap{suffix}", f"cam_gmp{suffix}", metric, hb)
            for net in ("gap", "fc"):
                out[f"cam{suffix}_vs_backprop_{net}_{metric}"] = compare(f"cam_gap{suffix}", f"backprop_{net}", metric, hb)
    cls = [r["classification"] for r in runs]
    out["gap_vs_gmp_classification"] = {"mean_diff": float(np.mean([c["gmp"] - c["gap"] for c in cls])),
                                        "gap_better": sum(c["gap"] < c["gmp"] for c in cls), "of": len(cls)}
    out["gap_vs_fc_classification"] = {"mean_diff": float(np.mean([c["gap"] - c["fc"] for c in cls])),
                                       "gap_better": sum(c["gap"] < c["fc"] for c in cls), "of": len(cls)}
    return out


def reproduce(out: str | os.PathLike, plan: Plan = FULL, progress: bool = True,
              log: Callable[[str], None] | None = None, docs: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run the whole reproduction into ``out``; returns the results (also ``out/results.json``).

    Writes ``out/data/<regime>/`` (the benchmark), ``out/runs/<regime>/<net>_seed<k>.pt`` (the
    nets), ``out/results.json``, ``out/report.md`` (the tables) and the figures
    ``out/reproduce_examples_<regime>.png`` and ``out/reproduce_threshold_curves.png``; with
    ``docs``, the figures are also written there.
    """
    from camloc.experiments.reproduce_report import write_report

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


def plan_from_dict(d: dict[str, Any]) -> Plan:
    """The :class:`Plan` recorded in a ``results.json``."""
    names = {f.name for f in dataclasses.fields(Plan)}
    return Plan(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def rerender(out: str | os.PathLike, docs: str | os.PathLike | None = None) -> list[str]:
    """Write ``report.md`` and the figures again from ``out/results.json`` and the seed's saved
    nets (the example maps are recomputed for the figure's rows only; nothing is trained)."""
    from camloc.experiments.reproduce_report import FIGURE_METHODS, write_report

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
