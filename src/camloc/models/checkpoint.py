"""camloc checkpoints: one file holding weights, architecture, class names and preprocessing.

Written atomically; read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from functools import partial
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


def _one_line(err: object) -> str:
    return " ".join(str(err).split())[:160]


def _torch_load(name: str, what: str) -> Any:
    from camloc.errors import ModelError

    try:
        return torch.load(name, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{name}: no such file ({what})") from None
    except IsADirectoryError:
        raise ModelError(f"{name}: is a directory, not {what}") from None
    except Exception as err:  # torch raises many kinds for a file it cannot unpickle
        raise ModelError(f"{name}: cannot read {what} ({_one_line(err)})") from None


def state_dict_problem(obj: Any) -> str | None:
    """Why ``obj`` is not a state dict (a dict of tensors under string keys), or ``None``."""
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}, expected a dict of tensors"
    for key, value in obj.items():
        if not isinstance(key, str):
            return f"key {repr(key)[:80]} is not a string"
        if not isinstance(value, torch.Tensor):
            return f"{repr(key)[1:-1][:80]} is {type(value).__name__}"
    return None


def read_state_dict(path: str | os.PathLike, what: str = "weights") -> dict[str, torch.Tensor]:
    """The state dict in a weights file (``torch.load(weights_only=True)``): the file's dict itself
    or the one under ``state_dict``, ``model`` or ``model_state_dict``.

    Raises:
        ModelError: unreadable file, or not a dict of tensors under string keys (one line
            naming the file).
    """
    from camloc.errors import ModelError

    name = os.fspath(path)
    obj = _torch_load(name, what)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    problem = state_dict_problem(obj)
    if problem:
        raise ModelError(f"{name}: not a state dict of tensors ({problem})")
    return obj


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint file; one-line ``ModelError`` naming the file if it is not
    one or a field is garbled (the fields' types are checked here, their fit to the
    architecture by :func:`load_checkpoint`)."""
    from camloc.errors import ModelError

    name = os.fspath(path)
    try:
        data = torch.load(name, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise ModelError(f"{name}: not a camloc checkpoint (cannot be read: {_one_line(err)})") from None
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


def load_checkpoint(path: str | os.PathLike) -> CamNet:
    """Rebuild the net saved in ``path``."""
    from camloc.errors import ModelError
    from camloc.models.registry import get_builder

    data = read_checkpoint(path)
    name = os.fspath(path)
    arch = data["arch"]
    builder = get_builder(arch)
    kwargs = dict(data.get("arch_kwargs") or {})
    if builder is None:
        from camloc.models.torchvision_models import build_torchvision, is_torchvision_name

        if not is_torchvision_name(arch):
            raise ModelError(f"{name}: checkpoint architecture {arch!r} is not known to this camloc")
        builder = partial(build_torchvision, arch)
    try:
        net = builder(**kwargs)
    except (TypeError, ValueError, RuntimeError) as err:  # unknown or out-of-range options
        raise ModelError(f"{name}: camloc checkpoint arch_kwargs do not fit {arch!r} ({_one_line(err)})") from None
    try:
        net.module.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        raise ModelError(f"{name}: weights do not fit architecture {arch!r} ({_one_line(err)})") from None
    names = list(data["class_names"])
    if names and len(names) != net.num_classes:
        raise ModelError(f"{name}: camloc checkpoint class_names holds {len(names)} names for a classifier of "
                         f"{net.num_classes} classes")
    net.class_names = names or [f"class_{i}" for i in range(net.num_classes)]
    net.preprocessing = Preprocessing.from_dict(data["preprocessing"])
    net.module.eval()
    return net
