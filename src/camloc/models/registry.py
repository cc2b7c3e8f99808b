"""One registry of model names, shared by the CLI and the Python API.

A builder is registered with :func:`register` and called as ``builder(**kwargs) -> CamNet``.
Every module in ``camloc.models`` is imported on first look-up, so a new family of nets only
has to register itself. :func:`load_model` turns a name, a file or a module into a
:class:`CamNet`; :func:`load_checkpoint` rebuilds a camloc checkpoint through the registry.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from camloc import defaults
from camloc.errors import ModelError, one_line
from camloc.models.checkpoint import is_checkpoint_path, read_checkpoint
from camloc.models.net import CamNet, Preprocessing, evaluating

Builder = Callable[..., CamNet]
_BUILDERS: dict[str, Builder] = {}
_DESCRIPTIONS: dict[str, str] = {}
_LOADED = False
DEFAULT_MODEL = defaults.MODEL


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
    for info in pkgutil.iter_modules([os.path.dirname(os.path.abspath(__file__))]):
        importlib.import_module(f"camloc.models.{info.name}")
    _LOADED = True


def available_models() -> dict[str, str]:
    """Registered names and one-line descriptions.

    Examples:
        >>> models = camloc.available_models()
        >>> "efficientnet_lite0" in models, models["alexnet_gap"]
        (True, 'AlexNet-GAP: AlexNet to conv5 (13x13 maps), 3x3x1024 conv, GAP, linear')
    """
    _load_all()
    return dict(sorted(_DESCRIPTIONS.items()))


def get_builder(name: str) -> Builder | None:
    """The builder of a registered name, or of ``timm:<arch>`` (a timm model)."""
    _load_all()
    if name.startswith("timm:"):
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
        model: ``None`` for the embedded default (:data:`camloc.defaults.MODEL`, EfficientNet-Lite1,
            ImageNet, run at shorter side :data:`camloc.defaults.SIDE` by ``localize``); a registered
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

    Examples:
        >>> import torchvision
        >>> net = camloc.load_model(torchvision.models.resnet18(num_classes=10))   # your own module
        >>> net.preprocessing.shape, tuple(camloc.cam(net, torch.zeros(1, 3, 224, 224), topk=3).maps.shape)
        ((224, 224), (1, 3, 7, 7))
        >>> camloc.load_model().name                                              # the embedded default
        'efficientnet_lite1'
    """
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
            if model is None and weights is None and not kwargs:
                net.default_side = defaults.SIDE
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


def load_checkpoint(path: str | os.PathLike) -> CamNet:
    """Rebuild the net saved in ``path``."""
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
        raise ModelError(f"{name}: camloc checkpoint arch_kwargs do not fit {arch!r} ({one_line(err, 160)})") from None
    try:
        net.module.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        raise ModelError(f"{name}: weights do not fit architecture {arch!r} ({one_line(err, 160)})") from None
    names = list(data["class_names"])
    if names and len(names) != net.num_classes:
        raise ModelError(f"{name}: camloc checkpoint class_names holds {len(names)} names for a classifier of "
                         f"{net.num_classes} classes")
    net.class_names = names or [f"class_{i}" for i in range(net.num_classes)]
    net.preprocessing = Preprocessing.from_dict(data["preprocessing"])
    net.module.eval()
    return net
