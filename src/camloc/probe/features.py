"""Backbone identity, pooled GAP features, and their on-disk cache."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from camloc.data.base import Sample, Split
from camloc.pixels.decode import load_image
from camloc.errors import ImageError, ProbeError, one_line
from camloc.io import atomic_write_with
from camloc.models.net import CamNet
from camloc.probe.base import CACHE_FORMAT, Box

# --------------------------------------------------------------------------- backbone identity


def feature_dim(net: CamNet) -> int:
    """Width ``K`` of the backbone's pooled features (the input width of its own classifier)."""
    return int(net.head.classifier.in_features)


def weights_digest(module: nn.Module, skip: nn.Module | None = None) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``module``'s state dict.

    The parameters of ``skip`` (a sub-module, e.g. the network's own classifier, which does not
    change the features) are left out.
    """
    prefixes = tuple(f"{name}." for name, m in module.named_modules() if skip is not None and m is skip and name)
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        if prefixes and name.startswith(prefixes):
            continue
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def backbone_digest(net: CamNet) -> str:
    """:func:`weights_digest` of the backbone: every weight except its own classifier's."""
    return weights_digest(net.module, skip=net.head.classifier)


def backbone_identity(net: CamNet) -> dict[str, Any]:
    """What makes two backbones give the same pooled features."""
    return {
        "name": net.name,
        "arch_kwargs": {k: net.arch_kwargs[k] for k in sorted(net.arch_kwargs)},
        "feature_dim": feature_dim(net),
        "pooling": net.head.pooling,
        "weights_sha256": backbone_digest(net),
        "preprocessing": net.preprocessing.to_dict(),
    }


# --------------------------------------------------------------------------- feature extraction


@dataclass
class Features:
    """Pooled features of the readable images of a list of samples.

    Attributes:
        x: ``(N, K)`` float32 pooled features, one row per readable sample.
        index: ``(N,)`` position of each row's sample in the list it came from.
        skipped: one-line reasons for the samples left out (unreadable images).
        cache_path: the cache file read or written, ``None`` without a cache.
        from_cache: whether ``x`` was read back from the cache.
    """

    x: np.ndarray
    index: np.ndarray
    skipped: list[str] = field(default_factory=list)
    cache_path: str | None = None
    from_cache: bool = False


def _file_entry(path: str) -> list[Any]:
    try:
        st = os.stat(path)
        return [os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns)]
    except OSError:
        return [os.path.abspath(path), None, None]


# How images meet the backbone: the pipeline's squash (OpenCV area resize to the net's input).
# Part of the cache key, so features computed another way (the earlier PIL bilinear resize) are
# not read back as these.
GEOMETRY = "squash, area resize (camloc.pipeline)"


def feature_key(net: CamNet, samples: Sequence[Sample], crops: Sequence[Box | None] | None = None) -> str:
    """SHA-256 naming the pooled features of ``samples`` (optionally cropped) under ``net``."""
    data = [
        _file_entry(s.path) + [None if crops is None or crops[i] is None else [int(v) for v in crops[i]]]
        for i, s in enumerate(samples)
    ]
    blob = json.dumps({"format": CACHE_FORMAT, "backbone": backbone_identity(net), "geometry": GEOMETRY,
                       "data": data}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def crop_box(image, box: Box | None):
    """Crop a PIL image to an inclusive ``[x0, y0, x1, y1]`` box clamped to the image."""
    if box is None:
        return image
    w, h = image.size
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w - 1, int(box[2])), min(h - 1, int(box[3]))
    if x1 < x0 or y1 < y0:
        return image
    return image.crop((x0, y0, x1 + 1, y1 + 1))


def compute_features(
    net: CamNet,
    samples: Sequence[Sample],
    crops: Sequence[Box | None] | None = None,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "features",
    backend: str = "auto",
) -> Features:
    """Run the frozen backbone once over ``samples`` through the inference pipeline (squashed to
    the net's input, one forward pass per batch) -> pooled features.

    Under ``torchrun`` (a process group joined) each process extracts its share of the samples
    and every process returns all the features, in sample order, as one process would.

    Unreadable images are left out with a one-line reason in ``skipped``. ``backend`` is the
    pipeline's (``"auto"``, ``"torch"`` or ``"onnxruntime"``).
    """
    from camloc.pipeline.distributed import gather_in_order, group
    from camloc.pixels.geometry import Resize
    from camloc.pipeline.run import Job, Pipeline, shard

    rank, world = group()

    def jobs():
        for i, s in enumerate(samples):
            box = None if crops is None else crops[i]
            yield Job(s.path if box is None else _cropped(s.path, box), i, s.path)

    pipe = Pipeline(net, resize=Resize("squash"), backend=backend, topk=0, batch_size=max(1, int(batch_size)),
                    keep="pooled", progress=None if progress else False, desc=desc)
    rows: list[np.ndarray] = []
    index: list[int] = []
    skipped: list[str] = []
    mine = shard(jobs(), rank, world)
    for res in pipe.run(mine, total=len(range(rank, len(samples), world))):
        if res.error is not None:
            skipped.append((res.index, res.error))
        else:
            rows.append((res.index, res.pooled))
    if world > 1:  # under torchrun: every process gets every row, in sample order
        rows, skipped = gather_in_order(rows), gather_in_order(skipped)
    index = [i for i, _ in rows]
    skipped = [why for _, why in skipped]
    x = np.stack([r for _, r in rows]) if rows else np.zeros((0, feature_dim(net)), np.float32)
    return Features(x=x.astype(np.float32), index=np.asarray(index, np.int64), skipped=skipped)


def _cropped(path: str, box: Box):
    """The image at ``path`` cropped to ``box`` (a PIL image for the pipeline), or ``path``
    itself when it cannot be read, so that the pipeline reports it in its own words."""
    try:
        return crop_box(load_image(path), box)
    except ImageError:
        return path


def save_feature_cache(path: str, key: str, feats: Features) -> None:
    """Write ``feats`` under ``key`` to ``path`` (npz, atomically)."""

    def write(f) -> None:
        np.savez(
            f,
            format=np.array(CACHE_FORMAT),
            key=np.array(key),
            x=feats.x,
            index=feats.index,
            skipped=np.array(feats.skipped, dtype=str),
        )

    atomic_write_with(path, write)


def load_feature_cache(path: str, key: str, n_samples: int | None = None) -> Features:
    """Read a cache file written by :func:`save_feature_cache` for ``key``.

    Raises:
        ProbeError: the file is not a readable feature cache, was written for another key, or
            its arrays are inconsistent (one line naming the file and the reason).
    """
    if not zipfile.is_zipfile(path):
        raise ProbeError(f"{path}: corrupt feature cache (not an npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            fmt, stored = str(z["format"]), str(z["key"])
            x, index, skipped = z["x"], z["index"], [str(s) for s in z["skipped"]]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ProbeError(f"{path}: corrupt feature cache ({one_line(err, 120)})") from None
    if fmt != CACHE_FORMAT:
        raise ProbeError(f"{path}: corrupt feature cache (format '{fmt}', expected '{CACHE_FORMAT}')")
    if stored != key:
        raise ProbeError(f"{path}: corrupt feature cache (written for another backbone or data)")
    if x.ndim != 2 or index.ndim != 1 or len(x) != len(index) or not np.isfinite(x).all():
        raise ProbeError(f"{path}: corrupt feature cache (arrays of shapes {x.shape} and {index.shape})")
    if n_samples is not None and (len(index) and (index.min() < 0 or index.max() >= n_samples)):
        raise ProbeError(f"{path}: corrupt feature cache (sample index out of range)")
    return Features(x=x.astype(np.float32), index=index.astype(np.int64), skipped=skipped, cache_path=path,
                    from_cache=True)


def extract_features(
    net: CamNet,
    samples: Split | Sequence[Sample],
    *,
    crops: Sequence[Box | None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "features",
    backend: str = "auto",
) -> Features:
    """Pooled features of ``samples`` (cropped to ``crops`` if given), cached in ``cache_dir``.

    The cache file is ``<cache_dir>/<key>.npz`` with ``key`` from :func:`feature_key`, so a
    change of backbone weights, preprocessing, image files (size or mtime) or crops makes a new
    entry. A corrupt cache file is reported with a one-line warning and rebuilt. Without
    ``cache_dir`` nothing is cached. ``backend`` runs the forward pass (the pipeline's: ONNX
    Runtime or PyTorch give the same features to float tolerance, so it is not part of the key).
    """
    if isinstance(samples, Split):
        samples = samples.samples
    samples = list(samples)
    if crops is not None and len(crops) != len(samples):
        raise ProbeError(f"{len(crops)} crop boxes for {len(samples)} images")
    if cache_dir is None:
        return compute_features(net, samples, crops, batch_size, progress, desc, backend)
    key = feature_key(net, samples, crops)
    path = os.path.join(os.path.expanduser(os.fspath(cache_dir)), f"{key[:40]}.npz")
    if os.path.exists(path):
        try:
            return load_feature_cache(path, key, len(samples))
        except ProbeError as err:
            warnings.warn(f"{err}; recomputing it", stacklevel=2)
    feats = compute_features(net, samples, crops, batch_size, progress, desc, backend)
    save_feature_cache(path, key, feats)
    feats.cache_path = path
    return feats
