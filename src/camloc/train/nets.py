"""The net a run trains: its model and options checked, built for the dataset's classes, and
optionally started from a checkpoint's weights."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from camloc.errors import ConfigError, one_line
from camloc.models.checkpoint import read_checkpoint
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import get_builder, load_model
from camloc.train.config import TrainConfig, model_arg_line


def check_model(cfg: TrainConfig, source: str | None = None) -> None:
    """A one-line ``ConfigError`` for an unknown model or a ``model_args`` key its builder lacks."""
    builder = get_builder(cfg.model)
    if builder is None:
        from camloc.models.registry import available_models

        raise ConfigError(f"{source or 'config'}: unknown model '{cfg.model}' (registered: {', '.join(available_models())})")
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    if "num_classes" not in params:
        raise ConfigError(f"{source or 'config'}: model '{cfg.model}' takes no num_classes option, so it cannot be "
                          "trained on a dataset's classes")
    for key in cfg.model_args:
        if key not in params or key == "num_classes":
            options = ", ".join(k for k in params if k not in ("num_classes", "weights"))
            raise ConfigError(f"{model_arg_line(source, key)}: model '{cfg.model}' has no option '{key}' (options: {options})")


def build_net(cfg: TrainConfig, classes: Sequence[str], source: str | None = None) -> CamNet:
    """The registered model with ``num_classes = len(classes)``, its class names, and a
    preprocessing of ``crop x crop`` with the model's own mean and std."""
    check_model(cfg, source)
    try:
        net = load_model(cfg.model, **{**cfg.model_args, "num_classes": len(classes)})
    except TypeError as err:  # e.g. a string where the builder wants a number
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.model_args.items())
        raise ConfigError(f"{source or 'config'}: model '{cfg.model}' cannot be built with {args or 'no options'} "
                          f"({one_line(err)})") from None
    net.class_names = list(classes)
    net.preprocessing = Preprocessing(shape=(cfg.crop, cfg.crop), mean=net.preprocessing.mean, std=net.preprocessing.std)
    if cfg.init_from:
        init_weights(net, cfg.init_from)
    return net


def arch_of(data: dict[str, Any]) -> str:
    """The architecture a read checkpoint names."""
    return str(data.get("arch"))


def init_weights(net: CamNet, path: str) -> None:
    """Copy a camloc checkpoint's weights into ``net`` (same architecture). Tensors whose shape
    differs (a classifier for another number of classes) keep their fresh initialization."""
    data = read_checkpoint(path)
    if arch_of(data) != net.name:
        raise ConfigError(f"{path}: checkpoint is architecture '{arch_of(data)}', not '{net.name}'")
    own = net.module.state_dict()
    state = data["state_dict"]
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unknown or missing:
        k = (unknown or missing)[0]
        raise ConfigError(f"{path}: weights do not fit '{net.name}' ({'unexpected' if unknown else 'missing'} {k})")
    fitting = {k: v for k, v in state.items() if v.shape == own[k].shape}
    net.module.load_state_dict(fitting, strict=False)
