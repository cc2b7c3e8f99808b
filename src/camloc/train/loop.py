"""One epoch: the optimizer's parameter groups and schedule, the training steps, the validation
pass, and the running sums (:class:`Tally`) both return."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from camloc.data.loader import Batch, Normalize
from camloc.train.config import TrainConfig
from camloc.train.distributed import Dist, all_sum


def param_groups(module: nn.Module, cfg: TrainConfig, extra: nn.Module | None = None) -> list[dict[str, Any]]:
    """The module's parameters at ``lr``, and its new layers' (``module.new_parameters()``, and
    the parameters of ``extra``: a WSOL method's own layers) at ``lr * new_layer_lr_mult``."""
    new = list(module.new_parameters()) if hasattr(module, "new_parameters") else []
    new += list(extra.parameters()) if extra is not None else []
    new_ids = {id(p) for p in new}
    base = [p for p in module.parameters() if id(p) not in new_ids]
    groups = [{"params": base, "lr": cfg.lr}] if base else []
    if new:
        groups.append({"params": new, "lr": cfg.lr * cfg.new_layer_lr_mult})
    return groups


def scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule ``lr_schedule`` names (cosine, constant or step)."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.lr_schedule == "constant":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=1.0)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)


def _forward(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(logits, loss)``: a WSOL step (:class:`camloc.train.wsol.WsolStep`, maybe inside
    DistributedDataParallel) computes both; a plain net is scored by cross-entropy."""
    from camloc.train.wsol import WsolStep

    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if isinstance(inner, WsolStep):
        return model(x, y)
    logits = model(x)
    return logits, F.cross_entropy(logits.float(), y)


@dataclass
class Tally:
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

    def reduce(self, d: Dist, device: torch.device) -> Tally:
        values = [float(v) for v in (self.loss, self.top1, self.top5, self.n, self.skipped)]
        loss, top1, top5, n, skipped = all_sum(values, d, device)
        return Tally(loss, top1, top5, n, skipped, self.reasons)


def train_epoch(model: nn.Module, loader: Iterable[Batch], opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                cfg: TrainConfig, d: Dist, normalize: Normalize, use_amp: bool, epoch: int, *, clip: float = 0.0,
                on_step: Callable[[], None] | None = None) -> Tally:
    """One epoch over ``loader``'s batches: forward, loss (cross-entropy, or a WSOL method's step
    when ``model`` is a :class:`camloc.train.wsol.WsolStep`), backward, optionally the
    gradient norm clipped to ``clip``, the optimizer's step, then ``on_step()`` (a per-step
    schedule). Returns the epoch's running sums (this process's)."""
    device = normalize.device
    model.train()
    tally = Tally()
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
                logits, loss = _forward(model, torch.zeros(1, 3, size, size, device=device),
                                        torch.zeros(1, dtype=torch.long, device=device))
                loss = loss * 0.0
            else:
                logits, loss = _forward(model, x, y)
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
def evaluate(model: nn.Module, loader: DataLoader, cfg: TrainConfig, d: Dist, normalize: Normalize,
             use_amp: bool) -> Tally:
    """Loss and top-1/top-5 hits over this process's validation shard (no gradients)."""
    device = normalize.device
    model.eval()
    tally = Tally()
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
