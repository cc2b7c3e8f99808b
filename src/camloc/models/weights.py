"""Reading weights: the one place camloc opens a torch file (``torch.load(weights_only=True)``, so a
pickle that would run code is refused) or a ``.safetensors`` file.

Every state dict, camloc checkpoint and probe file is read through :func:`load_torch_file`; every
weights file given by name (``--weights``, a backbone's weights) through :func:`read_state_dict`.
Errors are one line naming the file.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from camloc.errors import CamlocError, ModelError, one_line


def load_torch_file(path: str | os.PathLike, what: str, error: type[CamlocError] = ModelError, *,
                    missing: str = "no such file ({what})", unreadable: str = "cannot read {what} ({why})") -> Any:
    """The object in a torch file, read on the CPU with ``weights_only=True``.

    Raises:
        error: one line naming the file: ``<file>: `` then ``missing`` (no such file),
            ``is a directory, not <what>``, or ``unreadable`` (any other failure; ``{why}`` is the
            reason, one line). ``{what}`` in either template is ``what``.
    """
    name = os.fspath(path)
    try:
        return torch.load(name, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{name}: " + missing.format(what=what)) from None
    except IsADirectoryError:
        raise error(f"{name}: is a directory, not {what}") from None
    except Exception as err:  # torch raises many kinds for a file it cannot unpickle
        raise error(f"{name}: " + unreadable.format(what=what, why=_why_unreadable(name, err))) from None


def _why_unreadable(name: str, err: Exception) -> str:
    """One short line on why ``torch.load`` failed: an empty, truncated or foreign file, objects a
    weights-only load refuses, else the error's own text (cut to 160 characters)."""
    import re
    import zipfile

    text = one_line(err)
    try:
        with open(name, "rb") as f:
            head = f.read(2)
        size = os.path.getsize(name)
    except OSError:
        return one_line(err, 160)
    if size == 0:
        return "the file is empty"
    if head == b"PK" and not zipfile.is_zipfile(name):
        return "truncated: not a complete torch archive"
    if head != b"PK" and head[:1] != b"\x80":  # neither a torch archive nor a pickle
        return "not a torch file"
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL [\w.]+", text)
        if found or head == b"PK":
            return "holds objects a weights-only load refuses" + (f" ({found.group(0)})" if found else "")
        return "truncated or garbled pickle data"
    if isinstance(err, EOFError) or not text or "truncated" in text:
        return "truncated: the data ends early"
    return one_line(err, 160)


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
    """The state dict in a weights file: a ``.safetensors`` file, or a torch file whose dict is the
    state dict itself or holds it under ``state_dict``, ``model`` or ``model_state_dict``.

    Raises:
        ModelError: unreadable file, or not a dict of tensors under string keys (one line
            naming the file).
    """
    name = os.fspath(path)
    if name.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:  # installed with timm (pip install 'camloc[timm]')
            raise ModelError(f"{name}: reading .safetensors needs the safetensors package") from None
        try:
            return load_file(name)
        except Exception as err:  # missing file, bad header, ...
            raise ModelError(f"{name}: cannot read {what} ({one_line(err, 160)})") from None
    obj = load_torch_file(name, what)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    problem = state_dict_problem(obj)
    if problem:
        raise ModelError(f"{name}: not a state dict of tensors ({problem})")
    return obj
