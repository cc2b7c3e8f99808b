"""One registry of model names, shared by the CLI and the Python API.

A builder is registered with :func:`register` and called as ``builder(**kwargs) -> CamNet``.
Every module in ``camloc.models`` is imported on first look-up, so a new family of nets only
has to register itself.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from camloc.errors import ModelError
from camloc.models.net import CamNet, Preprocessing, evaluating

Builder = Callable[..., CamNet]
_BUILDERS: dict[str, Builder] = {}
_DESCRIPTIONS: dict[str, str] = {}
_LOADED = False
DEFAULT_MODEL = "efficientnet_lite0"


def register(name: str, description: str = "") -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().split("\n")[0]
        return fn

    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    import camloc.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"camloc.models.{info.name}")
    _LOADED = True


def available_models() -> dict[str, str]:
    """Registered names and one-line descriptions."""
    _load_all()
    return dict(sorted(_DESCRIPTIONS.items()))


def get_builder(name: str) -> Builder | None:
    """The builder of a registered name, or of ``timm:<arch>`` (a timm model)."""
    _load_all()
    if name.startswith("timm:"):
        from functools import partial

        from camloc.models.timm_models import build_timm

        return partial(build_timm, name[len("timm:"):])
    return _BUILDERS.get(name)


def load_model(
    model: str | os.PathLike | nn.Module | CamNet | None = None,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    **kwargs: Any,
) -> CamNet:
    """Load a classifier ready for CAM.

    Args:
        model: ``None`` for the embedded default (EfficientNet-Lite0, ImageNet); a registered
            name (see :func:`available_models`); a torchvision model name; ``"timm:<name>"``
            (a timm model, the optional ``timm`` extra); a camloc checkpoint file; or an
            ``nn.Module`` (its head is found automatically; timm modules through timm's API).
        weights: a local weights file for a torchvision or timm name (a state dict loaded with
            ``weights_only``; timm names also take ``.safetensors``).
        device: where to put the model (default CPU).
        **kwargs: builder options, e.g. ``num_classes``.

    Raises:
        ModelError: unknown name, unreadable checkpoint or weights (one line).
        camloc.models.heads.HeadError: a head where CAM is not exact.
    """
    from camloc.models.checkpoint import is_checkpoint_path, load_checkpoint

    if isinstance(model, CamNet):
        net = model
    elif isinstance(model, nn.Module) and type(model).__module__.startswith("timm."):
        from camloc.models.timm_models import timm_net

        net = timm_net(model, class_names=kwargs.pop("class_names", None))
    elif isinstance(model, nn.Module):
        with evaluating(model):  # the caller's module keeps its training flags
            net = CamNet(module=model, name=type(model).__name__, class_names=kwargs.pop("class_names", []),
                         preprocessing=kwargs.pop("preprocessing", Preprocessing()))
    else:
        spec = DEFAULT_MODEL if model is None else os.fspath(model)
        builder = get_builder(spec)
        if builder is not None:
            net = builder(weights=weights, **kwargs) if weights is not None else builder(**kwargs)
        elif is_checkpoint_path(spec):
            net = load_checkpoint(spec)
        else:
            from camloc.models.torchvision_models import build_torchvision, is_torchvision_name

            if is_torchvision_name(spec):
                net = build_torchvision(spec, weights=weights, **kwargs)
            else:
                known = ", ".join(sorted(_BUILDERS))
                raise ModelError(
                    f"unknown model '{spec}': not a file, a registered name ({known}) or a torchvision classifier"
                )
    if device is not None:
        net.to(device)
    return net
