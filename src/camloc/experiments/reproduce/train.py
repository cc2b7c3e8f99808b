"""The reproduction's data and nets: the generated benchmark read into memory once
(:class:`Images`), and the three small nets trained from image labels only with
:func:`camloc.train.train_epoch` (a checkpoint of the same plan is reused)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from camloc.data.loader import Batch, Normalize
from camloc.experiments.fashion_loc import REGIMES, write_benchmark
from camloc.experiments.reproduce.plan import Plan
from camloc.io import warn_null
from camloc.models.checkpoint import read_checkpoint, save_checkpoint
from camloc.models.net import CamNet
from camloc.models.registry import load_model
from camloc.train import Dist, TrainConfig, train_epoch


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
    from camloc.pixels.decode import load_image
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
    # the paper's figures are box figures: no masks (camloc data fashion-loc --add-masks adds them)
    write_benchmark(folder, regime, sizes, seed=plan.data_seed, progress=progress, masks=False)
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
                            Dist(), normalize, False, epoch, clip=plan.clip, on_step=sched.step)
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
