"""``torchrun`` support: this process's rank in the group, joined once (gloo on CPU, NCCL with
GPUs), and the device it should use."""

from __future__ import annotations

import os


def init_distributed() -> tuple[int, int]:
    """``(rank, world)`` from ``torchrun``'s environment, joining a gloo (CPU) or NCCL group;
    ``(0, 1)`` outside ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def local_device(requested: str | None = None) -> str:
    """``requested``, else this process's GPU under ``torchrun`` (``cuda:LOCAL_RANK``), else
    ``cuda`` when present, else ``cpu``."""
    if requested:
        return requested
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
