"""The WSOL methods' keys, their published defaults and valid ranges (no torch here: the config
checks them before anything is built).

The defaults are the CVPR 2020 WSOL evaluation's (Choe et al., "Evaluating Weakly Supervised
Object Localization Methods Right"; clovaai/wsolevaluation's ``config.py``). A method's keys
go in the ``[wsol_args]`` table of a training config (or ``wsol_args.KEY=VALUE`` overrides).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from camloc.errors import ConfigError

# method -> {key: default}
DEFAULTS: dict[str, dict[str, Any]] = {
    "cam": {},
    # Hide-and-Seek: square patches of grid_size pixels, each hidden with probability drop_rate
    "has": {"grid_size": 4, "drop_rate": 0.5},
    # ACoL: erase the features where branch A's normalized map of the label >= threshold;
    # branch B classifies the erased features; loss = CE(A) + branch_weight * CE(B)
    "acol": {"threshold": 0.7, "branch_weight": 1.0},
    # SPG: seed masks (foreground above *h, background below *l) of 1: the class map (supervises
    # branch B2), 2: sigmoid(B2) (supervises B1), 3: the fused (B1 + B2) / 2 (supervises C)
    "spg": {"threshold_1h": 0.7, "threshold_1l": 0.01, "threshold_2h": 0.5, "threshold_2l": 0.05,
            "threshold_3h": 0.7, "threshold_3l": 0.1, "loss_weight_b": 1.0, "loss_weight_c": 1.0},
    # ADL: per batch, with probability drop_rate the drop mask (channel-mean attention below
    # threshold * its maximum), else the importance map sigmoid(attention)
    "adl": {"drop_rate": 0.75, "threshold": 0.9},
    # CutMix: with probability prob, paste a box of area 1 - lam (lam ~ Beta(beta, beta)) from a
    # shuffled batch and mix the labels by area
    "cutmix": {"beta": 1.0, "prob": 1.0},
}
METHODS = tuple(DEFAULTS)

_UNIT = (lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
_RULES: dict[str, tuple[Any, str]] = {
    "grid_size": (lambda v: v >= 1, "at least 1"),
    "drop_rate": _UNIT, "threshold": _UNIT, "prob": _UNIT,
    "branch_weight": (lambda v: v >= 0, "non-negative"),
    "loss_weight_b": (lambda v: v >= 0, "non-negative"),
    "loss_weight_c": (lambda v: v >= 0, "non-negative"),
    "beta": (lambda v: v > 0, "positive"),
}


def _owners(key: str) -> list[str]:
    return [m for m, keys in DEFAULTS.items() if key in keys]


def resolve(method: str, args: dict[str, Any], where: str = "config",
            locate: Callable[[str], str] | None = None) -> dict[str, Any]:
    """``method``'s options: its defaults updated by ``args``. One-line :class:`ConfigError` for
    an unknown method, a key of another method or no method (naming the close key), a value of
    the wrong type or out of range. ``locate(key)`` names where a key is set (``FILE:LINE``)."""
    at = locate or (lambda key: where)
    if method not in DEFAULTS:
        close = difflib.get_close_matches(method, METHODS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{where}: unknown wsol_method '{method}' ({hint}methods: {', '.join(METHODS)})")
    own = DEFAULTS[method]
    out = dict(own)
    for key, value in args.items():
        if key not in own:
            owners = _owners(key)
            close = difflib.get_close_matches(key, list(own), n=1)
            parts = []
            if owners:
                parts.append(f"a key of {', '.join(repr(m) for m in owners)}")
            if close:
                parts.append(f"did you mean '{close[0]}'?")
            parts.append(f"{method}'s keys: {', '.join(own) or 'none'}")
            raise ConfigError(f"{at(key)}: wsol_method '{method}' has no key '{key}' ({'; '.join(parts)})")
        want = type(own[key])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or isinstance(value, bool):
            word = "an integer" if want is int else "a number"
            raise ConfigError(f"{at(key)}: wsol_args key '{key}' must be {word}, got {value!r}")
        ok, need = _RULES.get(key, _UNIT if key.startswith("threshold_") else (lambda v: True, ""))
        if not ok(value):
            raise ConfigError(f"{at(key)}: wsol_args key '{key}' must be {need}, got {value!r}")
        out[key] = value
    if method == "spg":
        for i in (1, 2, 3):
            hi, lo = out[f"threshold_{i}h"], out[f"threshold_{i}l"]
            if lo > hi:
                raise ConfigError(f"{where}: wsol_args key 'threshold_{i}l' ({lo}) must not exceed "
                                  f"'threshold_{i}h' ({hi})")
    return out


def suggest(trial: Any, method: str) -> dict[str, Any]:
    """Sample ``method``'s keys for an Optuna ``trial`` from the benchmark's search ranges:
    HaS grid size among {4, 8, 16, 32} pixels (scaled from the benchmark's 224-pixel images to
    small canvases as well) and drop rate U[0, 1]; ACoL threshold U[0, 1]; SPG every high
    threshold U[0, 1] and its low one U[0, high]; ADL drop rate and threshold U[0, 1]; CutMix
    beta U[0.05, 2] and probability U[0, 1]. Loss weights keep their defaults."""
    if method == "has":
        return {"grid_size": trial.suggest_categorical("grid_size", [4, 8, 16, 32]),
                "drop_rate": trial.suggest_float("drop_rate", 0.0, 1.0)}
    if method == "acol":
        return {"threshold": trial.suggest_float("threshold", 0.0, 1.0)}
    if method == "spg":
        out: dict[str, Any] = {}
        for i in (1, 2, 3):
            hi = trial.suggest_float(f"threshold_{i}h", 0.0, 1.0)
            out[f"threshold_{i}h"] = hi
            out[f"threshold_{i}l"] = trial.suggest_float(f"threshold_{i}l", 0.0, 1.0) * hi  # U[0, hi]
        return out
    if method == "adl":
        return {"drop_rate": trial.suggest_float("drop_rate", 0.0, 1.0),
                "threshold": trial.suggest_float("threshold", 0.0, 1.0)}
    if method == "cutmix":
        return {"beta": trial.suggest_float("beta", 0.05, 2.0), "prob": trial.suggest_float("prob", 0.0, 1.0)}
    return {}
