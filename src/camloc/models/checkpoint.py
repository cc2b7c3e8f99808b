"""camloc checkpoints: one file holding weights, architecture, class names and preprocessing.

Written atomically; read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from camloc.io import atomic_write_with
from camloc.models.net import CamNet, Preprocessing

FORMAT = "camloc-checkpoint/1"


def checkpoint_dict(net: CamNet, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    d = {
        "format": FORMAT,
        "arch": net.name,
        "arch_kwargs": dict(net.arch_kwargs),
        "state_dict": net.module.state_dict(),
        "class_names": list(net.class_names),
        "preprocessing": net.preprocessing.to_dict(),
    }
    if extra:
        d.update(extra)
    return d


def save_checkpoint(net: CamNet, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
    """Save ``net`` so that ``camloc.load_model(path)`` rebuilds it (atomic write)."""
    data = checkpoint_dict(net, extra)
    atomic_write_with(path, lambda f: torch.save(data, f))


def is_checkpoint_path(spec: str) -> bool:
    return os.path.isfile(spec)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint file; one-line ``ModelError`` if it is not one."""
    from camloc.models.registry import ModelError

    name = os.fspath(path)
    try:
        data = torch.load(name, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        reason = " ".join(str(err).split())[:160]
        raise ModelError(f"{name}: not a camloc checkpoint (cannot be read: {reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{name}: not a camloc checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in ("arch", "state_dict", "class_names", "preprocessing") if k not in data]
    if missing:
        raise ModelError(f"{name}: camloc checkpoint lacks {', '.join(missing)}")
    return data


def load_checkpoint(path: str | os.PathLike) -> CamNet:
    """Rebuild the net saved in ``path``."""
    from camloc.models.registry import ModelError, get_builder

    data = read_checkpoint(path)
    name = os.fspath(path)
    arch = data["arch"]
    builder = get_builder(arch)
    kwargs = dict(data.get("arch_kwargs") or {})
    if builder is None:
        from camloc.models.torchvision_models import build_torchvision, is_torchvision_name

        if not is_torchvision_name(arch):
            raise ModelError(f"{name}: checkpoint architecture '{arch}' is not known to this camloc")
        net = build_torchvision(arch, **kwargs)
    else:
        net = builder(**kwargs)
    try:
        net.module.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelError(f"{name}: weights do not fit architecture '{arch}' ({first})") from None
    net.class_names = list(data["class_names"])
    net.preprocessing = Preprocessing.from_dict(data["preprocessing"])
    net.module.eval()
    return net
