"""camloc checkpoints: one file holding weights, architecture, class names and preprocessing.

Written atomically; read with ``torch.load(weights_only=True)``
(:func:`camloc.models.weights.load_torch_file`); :func:`camloc.models.registry.load_checkpoint`
rebuilds the net.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from camloc.errors import ModelError
from camloc.io import atomic_write_with
from camloc.models.net import CamNet, Preprocessing
from camloc.models.weights import load_torch_file, state_dict_problem

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
    """Save ``net`` so that ``camloc.load_model(path)`` rebuilds it (atomic write).

    Examples:
        >>> import os, tempfile
        >>> net = camloc.load_model("resnet18", num_classes=10)
        >>> path = os.path.join(tempfile.mkdtemp(), "net.pt")
        >>> camloc.save_checkpoint(net, path)
        >>> back = camloc.load_model(path)
        >>> back.name, back.preprocessing == net.preprocessing, len(back.class_names)
        ('resnet18', True, 10)
    """
    data = checkpoint_dict(net, extra)
    atomic_write_with(path, lambda f: torch.save(data, f))


def is_checkpoint_path(spec: str) -> bool:
    return os.path.isfile(spec)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint file; one-line ``ModelError`` naming the file if it is not
    one or a field is garbled (the fields' types are checked here, their fit to the
    architecture by :func:`camloc.models.registry.load_checkpoint`)."""
    name = os.fspath(path)
    data = load_torch_file(name, "a camloc checkpoint", unreadable="not a camloc checkpoint (cannot be read: {why})")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{name}: not a camloc checkpoint (no '{FORMAT}' format tag)")
    missing = [k for k in ("arch", "state_dict", "class_names", "preprocessing") if k not in data]
    if missing:
        raise ModelError(f"{name}: camloc checkpoint lacks {', '.join(missing)}")
    problem = _field_problem(data)
    if problem:
        raise ModelError(f"{name}: camloc checkpoint {problem}")
    return data


def _field_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's fields, as ``"<field> ..."``, or ``None``."""
    if not isinstance(data["arch"], str):
        return f"arch is {type(data['arch']).__name__}, expected a name"
    kwargs = data.get("arch_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            return f"arch_kwargs is {type(kwargs).__name__}, expected a dict" if not isinstance(kwargs, dict) \
                else "arch_kwargs has keys that are not names"
        files = [k for k in kwargs if k.endswith("weights")]
        if files:  # a checkpoint carries its weights; it must not make camloc read other files
            return f"arch_kwargs name a weights file ({', '.join(repr(k) for k in files)})"
        n, names = kwargs.get("num_classes"), data["class_names"]
        if n is not None and isinstance(names, list) and names and n != len(names):
            # checked before anything is built: a made-up num_classes must not allocate gigabytes
            return f"arch_kwargs num_classes {str(n)[:20]} differs from its {len(names)} class_names"
    problem = state_dict_problem(data["state_dict"])
    if problem:
        return f"state_dict is not a dict of tensors ({problem})"
    names = data["class_names"]
    if not isinstance(names, list):
        return f"class_names is {type(names).__name__}, expected a list of strings"
    if not all(isinstance(c, str) for c in names):
        return "class_names is not a list of strings"
    pre = data["preprocessing"]
    if not isinstance(pre, dict):
        return f"preprocessing is {type(pre).__name__}, expected a dict"
    try:
        Preprocessing.from_dict(pre)
    except ValueError as err:  # its message starts with "preprocessing"
        return str(err)
    return None
