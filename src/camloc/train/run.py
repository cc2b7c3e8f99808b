"""Weakly supervised training: a classifier learns from image-level labels only (boxes, when the
dataset has them, are never read), and its GAP head then localizes by CAM.

    >>> from camloc.train import train
    >>> result = train("configs/train_fixture.toml", overrides=["epochs=2"])
    >>> result.run_dir, result.metrics[-1]["val_top1_error"]

One process on CPU, or N processes under ``torchrun --nproc_per_node=N`` with
DistributedDataParallel (NCCL on GPUs, gloo on CPU); ``batch_size`` is the global batch, so N
processes take the same optimization steps as one. Mixed precision on CUDA.

A run directory holds ``config.json``, ``metrics.csv`` (one row per epoch), ``last.pt`` and
``best.pt`` (camloc checkpoints that ``camloc.load_model(FILE)`` and ``camloc localize --model
FILE`` load directly), all written atomically after every epoch. ``last.pt`` also carries the
optimizer, scheduler, gradient scaler, random states and epoch, so :func:`train` with
``resume=RUN_DIR`` continues a killed run and ends with the same weights as an uninterrupted
one (on CPU). Sampling order and augmentation depend only on ``(seed, epoch, index)``.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from camloc.data.base import Split
from camloc.data.loader import Batch, Normalize, SplitDataset, collate, eval_transform, train_transform
from camloc.io import atomic_write_json, atomic_write_text
from camloc.models.checkpoint import read_checkpoint, save_checkpoint
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import get_builder, load_model
from camloc.errors import ConfigError
from camloc.train.config import TrainConfig, apply_overrides, config_from_dict, load_config, model_arg_line

METRIC_COLUMNS = ["epoch", "lr", "train_loss", "train_top1_error", "val_loss", "val_top1_error",
                  "val_top5_error", "images", "skipped", "seconds", "images_per_s"]


@dataclass
class TrainResult:
    """What a run left: its directory, one metrics row per epoch, and its two checkpoints."""

    run_dir: Path
    metrics: list[dict[str, Any]]
    last: Path
    best: Path
    skipped: int = 0
    best_epoch: int = 0


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    owned: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def _setup_distributed(device_spec: str) -> tuple[_Dist, torch.device]:
    """Join the process group ``torchrun`` describes in the environment (if any) and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device_spec.startswith("cuda") or (device_spec == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise ConfigError(f"config: device '{device_spec}' asked for, but CUDA is not available")
    if want_cuda:
        device = torch.device(f"cuda:{local}" if world > 1 or device_spec in ("auto", "cuda") else device_spec)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world <= 1:
        return _Dist(), device
    if dist.is_initialized():
        return _Dist(dist.get_world_size(), dist.get_rank(), local, owned=False), device
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_world_size(), dist.get_rank(), local, owned=True), device


def _all_sum(values: list[float], d: _Dist, device: torch.device) -> list[float]:
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ----------------------------------------------------------------------------------- random state

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) random states, in a form ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss_next = state["python"]
    random.setstate((v, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ----------------------------------------------------------------------------------- data

def _open_split(cfg: TrainConfig, name: str) -> Split:
    if not cfg.data:
        raise ConfigError("config: key 'data' (the dataset root) is required")
    from camloc.data import open_dataset

    split = open_dataset(cfg.data, name, cfg.format, image_root=cfg.image_root or None)
    if split.skipped and int(os.environ.get("RANK", "0")) == 0:
        print(f"{cfg.data}: {len(split.skipped)} entries of split '{name}' left out by the reader (first: "
              f"{split.skipped[0]})", file=sys.stderr)
    return split


def check_split(split: Split, where: str, classes: Sequence[str] | None = None) -> None:
    """Raise a one-line ``ValueError`` for an empty split, a label outside the classes, or a
    validation split whose classes differ from training's."""
    if len(split) == 0:
        extra = f" ({len(split.skipped)} entries left out; first: {split.skipped[0]})" if split.skipped else ""
        raise ValueError(f"{where}: split '{split.name or '?'}' holds no images{extra}")
    if not split.classes:
        raise ValueError(f"{where}: split '{split.name or '?'}' names no classes")
    n = len(split.classes)
    for s in split.samples:
        if not 0 <= int(s.label) < n:
            raise ValueError(f"{s.path}: class id {s.label} is not one of the {n} classes (0..{n - 1}) of {where}")
    if classes is not None and list(split.classes) != list(classes):
        raise ValueError(f"{where}: split '{split.name}' has {n} classes that differ from training's {len(classes)}")


def _loaders(cfg: TrainConfig, train_split: Split, val_split: Split | None, pre: Preprocessing, d: _Dist,
             device: torch.device) -> tuple[DataLoader, DistributedSampler, SplitDataset, DataLoader | None]:
    if cfg.batch_size % d.world:
        raise ConfigError(f"config: batch_size {cfg.batch_size} is not divisible by the {d.world} processes")
    per_rank = cfg.batch_size // d.world
    common = {"num_workers": cfg.workers, "collate_fn": collate, "pin_memory": device.type == "cuda"}
    train_ds = SplitDataset(train_split, train_transform(cfg.resize, cfg.crop, cfg.flip, cfg.augment), cfg.seed)
    sampler = DistributedSampler(train_ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=cfg.seed)
    # The generator only seeds the workers (each item seeds its own augmentation): it keeps
    # the loader off the global random state.
    train_loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler,
                              generator=torch.Generator().manual_seed(cfg.seed), **common)
    val_loader = None
    if val_split is not None:
        val_ds = SplitDataset(val_split, eval_transform(pre), cfg.seed)
        shard = Subset(val_ds, list(range(d.rank, len(val_ds), d.world)))  # no padding: each image once
        val_loader = DataLoader(shard, batch_size=per_rank, shuffle=False,
                                generator=torch.Generator().manual_seed(cfg.seed), **common)
    return train_loader, sampler, train_ds, val_loader


# ----------------------------------------------------------------------------------- model

def check_model(cfg: TrainConfig, source: str | None = None) -> None:
    """A one-line ``ConfigError`` for an unknown model or a ``model_args`` key its builder lacks."""
    builder = get_builder(cfg.model)
    if builder is None:
        from camloc.models.registry import available_models

        raise ConfigError(f"{source or 'config'}: unknown model '{cfg.model}' (registered: {', '.join(available_models())})")
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    if "num_classes" not in params:
        raise ConfigError(f"{source or 'config'}: model '{cfg.model}' takes no num_classes option, so it cannot be "
                          "trained on a dataset's classes")
    for key in cfg.model_args:
        if key not in params or key == "num_classes":
            options = ", ".join(k for k in params if k not in ("num_classes", "weights"))
            raise ConfigError(f"{model_arg_line(source, key)}: model '{cfg.model}' has no option '{key}' (options: {options})")


def build_net(cfg: TrainConfig, classes: Sequence[str], source: str | None = None) -> CamNet:
    """The registered model with ``num_classes = len(classes)``, its class names, and a
    preprocessing of ``crop x crop`` with the model's own mean and std."""
    check_model(cfg, source)
    try:
        net = load_model(cfg.model, **{**cfg.model_args, "num_classes": len(classes)})
    except TypeError as err:  # e.g. a string where the builder wants a number
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.model_args.items())
        raise ConfigError(f"{source or 'config'}: model '{cfg.model}' cannot be built with {args or 'no options'} "
                          f"({' '.join(str(err).split())})") from None
    net.class_names = list(classes)
    net.preprocessing = Preprocessing(shape=(cfg.crop, cfg.crop), mean=net.preprocessing.mean, std=net.preprocessing.std)
    if cfg.init_from:
        init_weights(net, cfg.init_from)
    return net


def _arch_of(data: dict[str, Any]) -> str:
    return str(data.get("arch"))


def init_weights(net: CamNet, path: str) -> None:
    """Copy a camloc checkpoint's weights into ``net`` (same architecture). Tensors whose shape
    differs (a classifier for another number of classes) keep their fresh initialization."""
    data = read_checkpoint(path)
    if _arch_of(data) != net.name:
        raise ConfigError(f"{path}: checkpoint is architecture '{_arch_of(data)}', not '{net.name}'")
    own = net.module.state_dict()
    state = data["state_dict"]
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unknown or missing:
        k = (unknown or missing)[0]
        raise ConfigError(f"{path}: weights do not fit '{net.name}' ({'unexpected' if unknown else 'missing'} {k})")
    fitting = {k: v for k, v in state.items() if v.shape == own[k].shape}
    net.module.load_state_dict(fitting, strict=False)


def _param_groups(module: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    new = list(module.new_parameters()) if hasattr(module, "new_parameters") else []
    new_ids = {id(p) for p in new}
    base = [p for p in module.parameters() if id(p) not in new_ids]
    groups = [{"params": base, "lr": cfg.lr}] if base else []
    if new:
        groups.append({"params": new, "lr": cfg.lr * cfg.new_layer_lr_mult})
    return groups


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.lr_schedule == "constant":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=1.0)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)


# ----------------------------------------------------------------------------------- epochs

@dataclass
class _Tally:
    """Running sums of one epoch (kept on the device until reduced, so CUDA never waits)."""

    loss: Any = 0.0
    top1: Any = 0.0
    top5: Any = 0.0
    n: float = 0.0
    skipped: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def add(self, logits: Tensor, labels: Tensor, loss: Tensor) -> None:
        k = min(5, logits.shape[1])
        hit = logits.topk(k, dim=1).indices == labels[:, None]
        n = labels.shape[0]
        self.loss = self.loss + loss.detach().double() * n
        self.top1 = self.top1 + hit[:, 0].sum()
        self.top5 = self.top5 + hit.any(dim=1).sum()
        self.n += n

    def skip(self, batch: Batch) -> None:
        self.skipped += len(batch.skipped)
        self.reasons.extend(batch.skipped[: max(0, 10 - len(self.reasons))])

    def reduce(self, d: _Dist, device: torch.device) -> _Tally:
        values = [float(v) for v in (self.loss, self.top1, self.top5, self.n, self.skipped)]
        loss, top1, top5, n, skipped = _all_sum(values, d, device)
        return _Tally(loss, top1, top5, n, skipped, self.reasons)


def train_epoch(model: nn.Module, loader: Iterable[Batch], opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                cfg: TrainConfig, d: _Dist, normalize: Normalize, use_amp: bool, epoch: int, *, clip: float = 0.0,
                on_step: Callable[[], None] | None = None) -> _Tally:
    """One epoch over ``loader``'s batches: forward, cross-entropy, backward, optionally the
    gradient norm clipped to ``clip``, the optimizer's step, then ``on_step()`` (a per-step
    schedule). Returns the epoch's running sums (this process's)."""
    device = normalize.device
    model.train()
    tally = _Tally()
    total = min(len(loader), cfg.max_batches) if cfg.max_batches else len(loader)
    bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
               disable=None if (d.main and cfg.progress) else True, file=sys.stderr)
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()
    for step, batch in enumerate(loader):
        if step >= total:
            break
        tally.skip(batch)
        if len(batch) == 0 and d.world == 1:
            bar.update()
            continue
        x = normalize(batch.images)
        y = batch.labels.to(device, non_blocking=True)
        with autocast:
            if len(batch) == 0:  # every image of this batch failed: take part in the gradient sync with nothing
                size = cfg.crop
                logits = model(torch.zeros(1, 3, size, size, device=device))
                loss = logits.sum() * 0.0
            else:
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        if on_step is not None:
            on_step()
        if len(batch):
            tally.add(logits.detach().float(), y, loss)
            if not bar.disable and (step % 10 == 0 or step == total - 1):
                bar.set_postfix(loss=f"{float(tally.loss) / tally.n:.4f}", acc=f"{float(tally.top1) / tally.n:.3f}")
        bar.update()
    bar.close()
    return tally


@torch.no_grad()
def _evaluate(model: nn.Module, loader: DataLoader, cfg: TrainConfig, d: _Dist, normalize: Normalize,
              use_amp: bool) -> _Tally:
    device = normalize.device
    model.eval()
    tally = _Tally()
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()
    bar = tqdm(loader, desc="validation", unit="batch", leave=False,
               disable=None if (d.main and cfg.progress) else True, file=sys.stderr)
    for batch in bar:
        tally.skip(batch)
        if len(batch) == 0:
            continue
        x = normalize(batch.images)
        y = batch.labels.to(device, non_blocking=True)
        with autocast:
            logits = model(x).float()
        tally.add(logits, y, F.cross_entropy(logits, y))
    return tally


def _rank_key(row: dict[str, Any], validated: bool) -> list[float]:
    """What "best" means: the lowest validation top-1 error, ties broken by validation loss;
    without validation, the lowest training loss."""
    inf = float("inf")
    if validated:
        return [inf if row["val_top1_error"] is None else row["val_top1_error"],
                inf if row["val_loss"] is None else row["val_loss"]]
    return [row["train_loss"], 0.0]


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in METRIC_COLUMNS})
    return buf.getvalue()


def _log(d: _Dist, text: str) -> None:
    if d.main:
        print(text, file=sys.stderr, flush=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}%"


# ----------------------------------------------------------------------------------- the run

def train(config: TrainConfig | str | os.PathLike | dict[str, Any] | None = None, *, overrides: Sequence[str] = (),
          resume: str | os.PathLike | None = None, train_split: Split | None = None,
          val_split: Split | None = None) -> TrainResult:
    """Train a classifier from image-level labels.

    Args:
        config: a :class:`TrainConfig`, a TOML file, or a mapping of config keys (ignored with
            ``resume``, which reads the run's own ``config.json``).
        overrides: ``key=value`` items applied on top (also with ``resume``, e.g. ``epochs=40``).
        resume: a run directory to continue from its ``last.pt``.
        train_split, val_split: in-memory splits used instead of reading ``config.data``.

    Returns:
        A :class:`TrainResult`; on N processes every process returns the same.

    Raises:
        ConfigError, ValueError, OSError: one-line errors naming the file, line or key.
    """
    source: str | None = None
    if resume is not None:
        run_dir = Path(resume)
        saved = run_dir / "config.json"
        if not saved.is_file():
            raise ConfigError(f"{run_dir}: not a run directory (no config.json)")
        cfg = config_from_dict(json.loads(saved.read_text(encoding="utf-8")), str(saved))
        cfg = apply_overrides(cfg, [*overrides, f"out={run_dir}"])
    elif isinstance(config, TrainConfig):
        cfg = apply_overrides(config.check(), overrides)
    elif isinstance(config, dict):
        cfg = apply_overrides(config_from_dict(config), overrides)
    elif config is not None:
        source = os.fspath(config)
        cfg = load_config(source, overrides)
    else:
        cfg = apply_overrides(TrainConfig(), overrides)
    d, device = _setup_distributed(cfg.device)
    try:
        return _Run(cfg, d, device, source).run(train_split, val_split, resume is not None)
    finally:
        d.close()


class _Run:
    def __init__(self, cfg: TrainConfig, d: _Dist, device: torch.device, source: str | None) -> None:
        self.cfg, self.d, self.device, self.source = cfg, d, device, source
        self.run_dir = Path(cfg.out)
        self.use_amp = cfg.amp and device.type == "cuda"

    def run(self, train_split: Split | None, val_split: Split | None, resuming: bool) -> TrainResult:
        cfg, d = self.cfg, self.d
        last, best = self.run_dir / "last.pt", self.run_dir / "best.pt"
        if not resuming and last.exists():
            raise ConfigError(f"{self.run_dir}: already holds a run (last.pt); continue it with --resume "
                              f"{self.run_dir} or choose another 'out'")
        if resuming and not last.is_file():
            raise ConfigError(f"{self.run_dir}: no last.pt to resume from")
        check_model(cfg, self.source)
        seed_everything(cfg.seed)
        where = cfg.data or "training data"
        train_split = train_split if train_split is not None else _open_split(cfg, cfg.train_split)
        check_split(train_split, where)
        if val_split is None and cfg.val_split:
            val_split = _open_split(cfg, cfg.val_split)
        if val_split is not None:
            check_split(val_split, where, train_split.classes)
        net = build_net(cfg, train_split.classes, self.source)
        module = net.module.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        model: nn.Module = module
        if d.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        opt = torch.optim.SGD(_param_groups(module, cfg), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        sched = _scheduler(opt, cfg)
        scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        rows: list[dict[str, Any]] = []
        start, best_key = 0, None
        if resuming:
            start, rows, best_key = self._restore(net, opt, sched, scaler, last)
            if d.main:  # a kill during an atomic write leaves its temporary file behind
                for stale in self.run_dir.glob(".tmp-*"):
                    stale.unlink(missing_ok=True)
        elif d.main:
            atomic_write_json(self.run_dir / "config.json", cfg.to_dict())
        train_loader, sampler, train_ds, val_loader = _loaders(cfg, train_split, val_split, net.preprocessing, d,
                                                               self.device)
        normalize = Normalize(net.preprocessing, self.device)
        _log(d, f"training {cfg.model} on {len(train_split)} images of {len(train_split.classes)} classes"
                f" ({d.world} process{'es' if d.world > 1 else ''}, {self.device.type}); run directory {self.run_dir}")
        if start >= cfg.epochs:
            _log(d, f"{self.run_dir}: already trained {start} of {cfg.epochs} epochs; nothing to do")
        total_skipped = sum(int(r.get("skipped") or 0) for r in rows)
        best_epoch = int(best_key[2]) if best_key is not None and len(best_key) > 2 else 0
        reported: set[str] = set()
        for epoch in range(start, cfg.epochs):
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            lr = opt.param_groups[0]["lr"]
            t0 = time.perf_counter()
            tally = train_epoch(model, train_loader, opt, scaler, cfg, d, normalize, self.use_amp, epoch)
            seconds = time.perf_counter() - t0
            tr = tally.reduce(d, self.device)
            if tr.n == 0:
                first = tally.reasons[0] if tally.reasons else "none"
                raise RuntimeError(f"{where}: no readable training image in split '{train_split.name or cfg.train_split}'"
                                   f" ({int(tr.skipped)} skipped; first: {first})")
            va = _evaluate(module, val_loader, cfg, d, normalize, self.use_amp).reduce(d, self.device) \
                if val_loader is not None else None
            sched.step()
            for reason in tally.reasons + (va.reasons if va else []):
                if reason not in reported and len(reported) < 10:
                    reported.add(reason)
                    _log(d, f"skipped: {reason}")
            skipped = int(tr.skipped + (va.skipped if va else 0))
            total_skipped += skipped
            row = {
                "epoch": epoch + 1, "lr": lr, "train_loss": tr.loss / tr.n,
                "train_top1_error": 100.0 * (1 - tr.top1 / tr.n),  # errors in percent, as everywhere in camloc
                "val_loss": va.loss / va.n if va and va.n else None,
                "val_top1_error": 100.0 * (1 - va.top1 / va.n) if va and va.n else None,
                "val_top5_error": 100.0 * (1 - va.top5 / va.n) if va and va.n else None,
                "images": int(tr.n), "skipped": skipped, "seconds": round(seconds, 3),
                "images_per_s": round(tr.n / seconds, 2) if seconds > 0 else None,
            }
            rows.append(row)
            key = _rank_key(row, va is not None)
            improved = best_key is None or key < list(best_key[:2])
            if improved:
                best_key, best_epoch = [*key, epoch + 1], epoch + 1
            if d.main:
                self._save(net, opt, sched, scaler, epoch + 1, rows, best_key, improved)
            if d.world > 1:
                dist.barrier()
            _log(d, f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, top-1 error "
                    f"{_pct(row['train_top1_error'])}; val top-1 error {_pct(row['val_top1_error'])}, top-5 error "
                    f"{_pct(row['val_top5_error'])}; {row['images_per_s']} images/s"
                    + (f"; {skipped} images skipped" if skipped else ""))
        return TrainResult(self.run_dir, rows, last, best, total_skipped, best_epoch)

    def _save(self, net: CamNet, opt: torch.optim.Optimizer, sched: Any, scaler: torch.amp.GradScaler, epochs: int,
              rows: list[dict[str, Any]], best_key: list[float] | None, improved: bool) -> None:
        state = {"epoch": epochs, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "scaler": scaler.state_dict(), "rng": rng_state(), "best": best_key, "metrics": rows,
                 "config": self.cfg.to_dict()}
        # best before last: a kill between the two redoes this epoch on resume, rewriting both
        if improved:
            save_checkpoint(net, self.run_dir / "best.pt", extra={"epoch": epochs, "metrics": rows[-1]})
        save_checkpoint(net, self.run_dir / "last.pt", extra={"train_state": state})
        atomic_write_text(self.run_dir / "metrics.csv", _csv(rows))

    def _restore(self, net: CamNet, opt: torch.optim.Optimizer, sched: Any, scaler: torch.amp.GradScaler,
                 path: Path) -> tuple[int, list[dict[str, Any]], list[float] | None]:
        data = read_checkpoint(path)
        if _arch_of(data) != self.cfg.model:
            raise ConfigError(f"{path}: checkpoint is architecture '{_arch_of(data)}', the run's config says "
                              f"'{self.cfg.model}'")
        state = data.get("train_state")
        if not isinstance(state, dict):
            raise ConfigError(f"{path}: holds no training state to resume from")
        try:
            net.module.load_state_dict(data["state_dict"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ConfigError(f"{path}: weights do not fit architecture '{self.cfg.model}' ({first})") from None
        net.module.to(self.device)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        _log(self.d, f"resuming {path} after epoch {state['epoch']}")
        return int(state["epoch"]), list(state["metrics"]), state.get("best")
