"""The training run's process group: joined from ``torchrun``'s environment with the backend of
the device the run trains on, left again by the run that joined it.

Not :mod:`camloc.pipeline.distributed`: training picks gloo or NCCL by its configured device
(``device = "cpu"`` on a GPU machine trains on gloo), refuses ``cuda`` without CUDA, and leaves
the group it joined when the run ends."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from camloc.errors import ConfigError


@dataclass
class Dist:
    """This process's place in the group: ``world`` processes, its ``rank``, its ``local_rank``
    on its machine; ``owned`` when this run joined the group (and so leaves it)."""

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


def setup_distributed(device_spec: str) -> tuple[Dist, torch.device]:
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
        return Dist(), device
    if dist.is_initialized():
        return Dist(dist.get_world_size(), dist.get_rank(), local, owned=False), device
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_world_size(), dist.get_rank(), local, owned=True), device


def all_sum(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """``values`` summed over every process of ``d`` (as they are on one process)."""
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
