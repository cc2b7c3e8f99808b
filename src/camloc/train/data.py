"""The run's data: its splits read and checked, and the loaders that shard them over processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from camloc.data.base import Split
from camloc.data.loader import SplitDataset, collate, eval_transform, train_transform
from camloc.errors import ConfigError
from camloc.models.net import Preprocessing
from camloc.train.config import TrainConfig
from camloc.train.distributed import Dist


def open_split(cfg: TrainConfig, name: str) -> Split:
    """Split ``name`` of the config's dataset; the first process reports the entries the reader left out."""
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


def make_loaders(cfg: TrainConfig, train_split: Split, val_split: Split | None, pre: Preprocessing, d: Dist,
                 device: torch.device) -> tuple[DataLoader, DistributedSampler, SplitDataset, DataLoader | None]:
    """The training loader (this process's share of ``batch_size``), its sampler and dataset (both
    told each epoch), and the validation loader over this process's shard (``None`` without one)."""
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
