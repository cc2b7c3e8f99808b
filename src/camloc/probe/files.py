"""Probe files: save, load, check against a backbone, attach to a net."""

from __future__ import annotations

import io
import json
import os
import warnings

import numpy as np
import torch

from camloc.errors import ProbeError, one_line
from camloc.io import atomic_write_with
from camloc.models.net import CamNet, Preprocessing
from camloc.models.weights import load_torch_file
from camloc.probe.base import PROBE_FORMAT
from camloc.probe.features import backbone_digest, feature_dim
from camloc.probe.linear import Probe

# --------------------------------------------------------------------------- probe files


def save_probe(probe: Probe, path: str | os.PathLike) -> None:
    """Write ``probe`` to ``path`` (a torch file of tensors and plain values, atomically)."""
    payload = {
        "format": PROBE_FORMAT,
        "backbone": probe.backbone,
        "feature_dim": int(probe.feature_dim),
        "weight": torch.from_numpy(np.ascontiguousarray(probe.weight, np.float32)),
        "bias": torch.from_numpy(np.ascontiguousarray(probe.bias, np.float32)),
        "class_names": list(probe.class_names),
        "classifier": probe.classifier,
        "C": float(probe.C),
        "backbone_sha256": probe.backbone_sha256,
        "info": json.dumps(probe.info),
        "preprocessing": json.dumps(probe.preprocessing),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_with(path, lambda f: f.write(buf.getvalue()))


def load_probe(path: str | os.PathLike) -> Probe:
    """Read a probe file written by :func:`save_probe` (``torch.load(weights_only=True)``).

    Raises:
        ProbeError: missing, unreadable or inconsistent file (one line naming it).
    """
    name = os.fspath(path)
    d = load_torch_file(name, "a probe file", ProbeError, missing="no such probe file",
                        unreadable="not a probe file ({why})")
    if not isinstance(d, dict) or d.get("format") != PROBE_FORMAT:
        raise ProbeError(f"{name}: not a probe file (no '{PROBE_FORMAT}' format tag)")
    try:
        weight = d["weight"].float().numpy()
        bias = d["bias"].float().numpy()
        probe = Probe(
            backbone=str(d["backbone"]), feature_dim=int(d["feature_dim"]), weight=weight, bias=bias,
            class_names=[str(c) for c in d["class_names"]], classifier=str(d["classifier"]), C=float(d["C"]),
            backbone_sha256=str(d["backbone_sha256"]), info=json.loads(d["info"]),
            preprocessing=json.loads(d.get("preprocessing", "null")),
        )
        if probe.preprocessing is not None:
            Preprocessing.from_dict(probe.preprocessing)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ProbeError(f"{name}: probe file lacks or garbles {one_line(err, 80)}") from None
    c, k = len(probe.class_names), probe.feature_dim
    if weight.shape != (c, k) or bias.shape != (c,):
        raise ProbeError(f"{name}: probe weight {weight.shape} / bias {bias.shape} do not match "
                         f"{c} classes x {k} features")
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise ProbeError(f"{name}: probe weights are not finite")
    return probe


def check_probe(net: CamNet, probe: Probe, where: str = "probe", strict: bool = True) -> None:
    """Raise :class:`ProbeError` unless ``probe`` was fit on ``net``'s features.

    The backbone name and feature width must match; a different weights hash (same
    architecture, other weights) is an error too when ``strict``, else a warning.
    """
    if probe.backbone != net.name:
        raise ProbeError(f"{where}: fit on backbone '{probe.backbone}', not on '{net.name}'")
    k = feature_dim(net)
    if probe.feature_dim != k:
        raise ProbeError(f"{where}: fit on {probe.feature_dim} features, '{net.name}' gives {k}")
    if probe.backbone_sha256 and probe.backbone_sha256 != backbone_digest(net):
        msg = f"{where}: fit on other weights of '{net.name}' (weights hash differs)"
        if strict:
            raise ProbeError(msg)
        warnings.warn(msg, stacklevel=2)


def attach_probe(net: CamNet, path: str | os.PathLike | Probe, strict: bool = True) -> CamNet:
    """Load a probe file (or take a :class:`Probe`), check it belongs to ``net``, attach it.

    Afterwards ``net.probe`` is an ``nn.Linear(K, C)`` with the probe's weights,
    ``net.class_names`` are the probe's classes and ``net.preprocessing`` is the one the probe's
    features were extracted with (e.g. a larger input size), so :func:`camloc.cam` and
    ``localize`` score and map the probe's classes in the same single forward pass.

    Raises:
        ProbeError: unreadable file, another backbone, another feature width (one line).
    """
    probe = path if isinstance(path, Probe) else load_probe(path)
    where = "probe" if isinstance(path, Probe) else os.fspath(path)
    check_probe(net, probe, where, strict=strict)
    net.probe = probe.linear().to(net.device)
    net.class_names = list(probe.class_names)
    net.probe_file = None if isinstance(path, Probe) else where  # how errors name the model (camloc.classes)
    if probe.preprocessing:
        net.preprocessing = Preprocessing.from_dict(probe.preprocessing)
        net.default_side = None  # the probe's input size sets localize's geometry (camloc.localize.default_resize)
    return net
