"""Training configuration: a TOML file of flat keys plus a ``[model_args]`` table, and
``key=value`` overrides from the command line.

    data = "data/birds"             # dataset root: image folder, CUB-200-2011, ILSVRC, CVPR-2020 metadata
    model = "vgg16_gap"             # any registered name (camloc models)
    epochs = 30
    lr = 0.001
    wsol_method = "cam"             # or has, acol, spg, adl, cutmix (camloc.train.wsol)
    [model_args]                    # options of the model's builder
    backbone_weights = "vgg16.pth"
    [wsol_args]                     # the method's keys (defaults: the CVPR 2020 benchmark's)

Every key has a default (the paper's fine-tuning recipe); a key that does not exist, or a value
of the wrong type, is a one-line :class:`ConfigError` naming the file and line (or the
override). Relative paths are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from camloc.errors import ConfigError, one_line


@dataclass
class TrainConfig:
    """What a training run does. Defaults are the paper's recipe for fine-tuning a GAP net.

    Attributes:
        data: dataset root (``camloc.data.open_dataset`` recognises the format); ``format``
            names it instead (``"folder"``, ``"cub"``, ``"ilsvrc"``, ``"wsol"``) and
            ``image_root`` is where WSOL metadata's image ids point (default: the metadata folder).
        train_split / val_split: split names; ``val_split = ""`` trains without validation.
        model: a registered model name; ``model_args``: its builder's options
            (``num_classes`` comes from the dataset).
        init_from: start from this camloc checkpoint's weights (same architecture; a
            classifier of another size is left freshly initialized).
        out: the run directory (``metrics.csv``, ``last.pt``, ``best.pt``, ``config.json``).
        epochs, batch_size: ``batch_size`` is global, split evenly across processes.
        lr: learning rate of the backbone; ``new_layer_lr_mult`` multiplies it for the layers
            added on top (the 3x3 convolutions and the classifier; 10 is a common choice).
        momentum, weight_decay: SGD's.
        lr_schedule: ``"step"`` (multiply by ``lr_gamma`` every ``lr_step`` epochs),
            ``"cosine"`` (to 0 over ``epochs``) or ``"constant"``.
        resize, crop, flip, augment: training augmentation (``"crop"``: resize to
            ``resize x resize`` and take a random ``crop x crop`` window; ``"resized_crop"``:
            random area and aspect, rescaled to ``crop``). Validation resizes the whole image
            to ``crop x crop``, as localization does.
        workers: data-loading processes per training process.
        seed: seeds the model initialization, the sampling order and every augmentation.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on CPU.
        max_batches: stop each epoch after this many batches (0 = the whole split).
        progress: show progress bars (on a terminal).
        wsol_method: the WSOL method the training step applies (``"cam"``, ``"has"``,
            ``"acol"``, ``"spg"``, ``"adl"``, ``"cutmix"``); ``wsol_args``: its keys (see
            :mod:`camloc.train.wsol`; unset keys take the published defaults).
    """

    data: str = ""
    format: str = "auto"
    image_root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    model: str = "vgg16_gap"
    model_args: dict[str, Any] = field(default_factory=dict)
    init_from: str = ""
    out: str = "runs/train"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.001
    new_layer_lr_mult: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0005
    lr_schedule: str = "step"
    lr_step: int = 10
    lr_gamma: float = 0.1
    resize: int = 256
    crop: int = 224
    flip: bool = True
    augment: str = "crop"
    workers: int = 4
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    max_batches: int = 0
    progress: bool = True
    wsol_method: str = "cam"
    wsol_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self, where: str = "config") -> TrainConfig:
        """Validate value ranges; one-line :class:`ConfigError` on the first bad one."""
        rules = [
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("lr", self.lr > 0, "positive"),
            ("new_layer_lr_mult", self.new_layer_lr_mult > 0, "positive"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "non-negative"),
            ("lr_schedule", self.lr_schedule in ("step", "cosine", "constant"), "'step', 'cosine' or 'constant'"),
            ("lr_step", self.lr_step >= 1, "at least 1"),
            ("crop", self.crop >= 8, "at least 8"),
            ("resize", self.augment != "crop" or self.resize >= self.crop, f"at least crop ({self.crop})"),
            ("augment", self.augment in ("crop", "resized_crop"), "'crop' or 'resized_crop'"),
            ("workers", self.workers >= 0, "non-negative"),
            ("max_batches", self.max_batches >= 0, "non-negative"),
            ("device", re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ]
        for key, ok, need in rules:
            if not ok:
                raise ConfigError(f"{where}: config key '{key}' must be {need}, got {getattr(self, key)!r}")
        from camloc.train.wsol.spec import resolve

        resolve(self.wsol_method, self.wsol_args, where)
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_TYPES: dict[str, type] = {name: type(getattr(TrainConfig(), name)) for name in _FIELDS}
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a table"}


def _line_of(text: str, key: str, table: str | None = None) -> int | None:
    """1-based line where ``key = ...`` is set (inside ``[table]`` when given), else ``None``."""
    current: str | None = None
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", s)
        if m:
            current = m.group(1).strip("\"'")
            if table is None and current == key:
                return i
            continue
        m = re.match(r"""^["']?([A-Za-z0-9_.-]+)["']?\s*=""", s)
        if m and m.group(1) == key and current == table:
            return i
    return None


def _coerce(key: str, value: Any, raw: str | None, where: str) -> Any:
    want = _TYPES[key]
    if want is str and raw is not None:  # override: take the text as written
        return raw
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: config key '{key}' must be {_TYPE_WORDS[want]}, got {value!r}")


def _unknown(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(_FIELDS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(_FIELDS)})"
    return ConfigError(f"{where}: unknown config key '{key}'{hint}")


def parse_value(text: str) -> Any:
    """An override's value as TOML (``3``, ``1e-3``, ``true``, ``"a b"``), else the plain text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(cfg: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply ``key=value`` items (``model_args.NAME=value`` sets a model option)."""
    values = cfg.to_dict()
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        where = f"override '{item}'"
        if not sep or not key:
            raise ConfigError(f"{where}: expected key=value")
        if key.startswith(("model_args.", "wsol_args.")):
            table, name = key.split(".", 1)
            values[table] = {**values[table], name: parse_value(text)}
            continue
        if key not in _FIELDS:
            raise _unknown(key, where)
        values[key] = _coerce(key, parse_value(text), text, where)
    return TrainConfig(**values).check("overrides")


def config_from_dict(d: dict[str, Any], where: str = "config", text: str | None = None) -> TrainConfig:
    """Build a config from a mapping; unknown keys and wrong types are one-line errors."""
    values: dict[str, Any] = {}
    for key, value in d.items():
        line = _line_of(text, key) if text is not None else None
        at = f"{where}:{line}" if line else where
        if key not in _FIELDS:
            raise _unknown(key, at)
        values[key] = _coerce(key, value, None, at)
    if text is not None:
        from camloc.train.wsol.spec import resolve

        def locate(key: str) -> str:
            line = _line_of(text, key, "wsol_args")
            return f"{where}:{line}" if line else where

        method = values.get("wsol_method", "cam")
        line = _line_of(text, "wsol_method")
        resolve(method, values.get("wsol_args", {}), f"{where}:{line}" if line else where, locate)
    return TrainConfig(**values).check(where)


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a TOML config file and apply ``key=value`` overrides."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise ConfigError(f"{name}: cannot read config ({err.strerror or err})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{name}: not valid TOML ({one_line(err)})") from None
    cfg = config_from_dict(data, name, text)
    return apply_overrides(cfg, overrides)


def model_arg_line(path: str | os.PathLike | None, key: str) -> str:
    """``FILE:LINE`` of ``key`` in the ``[model_args]`` table of a config file (for errors)."""
    if path is None:
        return "model_args"
    try:
        with open(path, encoding="utf-8") as f:
            line = _line_of(f.read(), key, "model_args")
    except OSError:
        line = None
    return f"{os.fspath(path)}:{line}" if line else os.fspath(path)
