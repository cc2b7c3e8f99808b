"""A training run: :func:`train` reads the config, joins the process group, and :class:`_Run`
trains epoch by epoch, writing ``config.json``, ``metrics.csv``, ``last.pt`` and ``best.pt``
(atomically, after every epoch) and resuming from ``last.pt``."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from camloc.data.base import Split
from camloc.data.loader import Normalize
from camloc.errors import ConfigError, one_line
from camloc.io import atomic_write_json, atomic_write_text
from camloc.models.checkpoint import read_checkpoint, save_checkpoint
from camloc.models.net import CamNet
from camloc.train.config import TrainConfig, apply_overrides, config_from_dict, load_config
from camloc.train.data import check_split, make_loaders, open_split
from camloc.train.distributed import Dist, setup_distributed
from camloc.train.loop import evaluate, param_groups, scheduler, train_epoch
from camloc.train.nets import arch_of, build_net, check_model
from camloc.train.random_state import rng_state, seed_everything, set_rng_state
from camloc.train.wsol import WsolStep, build_method

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


def _log(d: Dist, text: str) -> None:
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
    d, device = setup_distributed(cfg.device)
    try:
        return _Run(cfg, d, device, source).run(train_split, val_split, resume is not None)
    finally:
        d.close()


class _Run:
    def __init__(self, cfg: TrainConfig, d: Dist, device: torch.device, source: str | None) -> None:
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
        train_split = train_split if train_split is not None else open_split(cfg, cfg.train_split)
        check_split(train_split, where)
        if val_split is None and cfg.val_split:
            val_split = open_split(cfg, cfg.val_split)
        if val_split is not None:
            check_split(val_split, where, train_split.classes)
        net = build_net(cfg, train_split.classes, self.source)
        module = net.module.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        method = build_method(cfg.wsol_method, cfg.wsol_args, module).to(self.device)
        self.method = method
        model: nn.Module = WsolStep(module, method)
        if d.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        opt = torch.optim.SGD(param_groups(module, cfg, method), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        sched = scheduler(opt, cfg)
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
        train_loader, sampler, train_ds, val_loader = make_loaders(cfg, train_split, val_split, net.preprocessing, d,
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
            va = evaluate(module, val_loader, cfg, d, normalize, self.use_amp).reduce(d, self.device) \
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
        method.detach_net()
        return TrainResult(self.run_dir, rows, last, best, total_skipped, best_epoch)

    def _save(self, net: CamNet, opt: torch.optim.Optimizer, sched: Any, scaler: torch.amp.GradScaler, epochs: int,
              rows: list[dict[str, Any]], best_key: list[float] | None, improved: bool) -> None:
        state = {"epoch": epochs, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "scaler": scaler.state_dict(), "rng": rng_state(), "best": best_key, "metrics": rows,
                 "config": self.cfg.to_dict(), "wsol": self.method.state_dict()}
        # best before last: a kill between the two redoes this epoch on resume, rewriting both
        if improved:
            save_checkpoint(net, self.run_dir / "best.pt", extra={"epoch": epochs, "metrics": rows[-1]})
        save_checkpoint(net, self.run_dir / "last.pt", extra={"train_state": state})
        atomic_write_text(self.run_dir / "metrics.csv", _csv(rows))

    def _restore(self, net: CamNet, opt: torch.optim.Optimizer, sched: Any, scaler: torch.amp.GradScaler,
                 path: Path) -> tuple[int, list[dict[str, Any]], list[float] | None]:
        data = read_checkpoint(path)
        if arch_of(data) != self.cfg.model:
            raise ConfigError(f"{path}: checkpoint is architecture '{arch_of(data)}', the run's config says "
                              f"'{self.cfg.model}'")
        state = data.get("train_state")
        if not isinstance(state, dict):
            raise ConfigError(f"{path}: holds no training state to resume from")
        try:
            net.module.load_state_dict(data["state_dict"])
        except RuntimeError as err:
            raise ConfigError(f"{path}: weights do not fit architecture '{self.cfg.model}' ({one_line(err, 160)})") from None
        net.module.to(self.device)
        if self.cfg.wsol_method != "cam" or state.get("wsol"):
            self.method.load_state_dict(state.get("wsol") or {})
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        _log(self.d, f"resuming {path} after epoch {state['epoch']}")
        return int(state["epoch"]), list(state["metrics"]), state.get("best")
