"""``torchrun`` support: this process's rank in the group, joined once (gloo on CPU, NCCL with
GPUs), and the device it should use."""

from __future__ import annotations

import atexit
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
        # Leave the group before the interpreter ends: a group left joined keeps the backend's
        # threads alive at exit, and the C++ runtime then aborts the process (SIGABRT).
        atexit.register(_leave)
    return dist.get_rank(), dist.get_world_size()


def _leave() -> None:
    """Every process leaves together: on gloo a monitored barrier first (bounded: a process that
    died is reported, not waited for), so no process tears its connections down while another
    still uses them, then the group is destroyed."""
    from datetime import timedelta

    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=60))
        except RuntimeError:
            pass  # a process is gone: leave anyway, its failure is reported by torchrun
    dist.destroy_process_group()


def local_device(requested: str | None = None) -> str:
    """``requested``, else this process's GPU under ``torchrun`` (``cuda:LOCAL_RANK``), else
    ``cuda`` when present, else ``cpu``."""
    if requested:
        return requested
    import torch

    if torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)  # NCCL's collectives and bare .cuda() calls use this GPU
        return f"cuda:{index}"
    return "cpu"


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def group() -> tuple[int, int]:
    """``(rank, world)`` of the joined process group, ``(0, 1)`` when none is joined."""
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_in_order(items: list[tuple[int, object]]) -> list[tuple[int, object]]:
    """Every process's ``(index, value)`` pairs, gathered on every process, sorted by index."""
    return sorted(all_gather_lists(items), key=lambda pair: pair[0])


def all_gather_lists(items: list) -> list:
    """Every process's list, joined in rank order, on every process."""
    import torch.distributed as dist

    parts: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]
