"""Linear probes on the GAP features of a frozen backbone: CAMs for new tasks.

The global-average-pooled features ``F_k = mean_xy f_k(x, y)`` of a network trained on one task
localize for other tasks: fit a linear classifier ``S_c = sum_k w_k^c F_k + b_c`` on them with
image labels only, and the class activation map of class ``c`` is

    M_c(x, y) = sum_k w_k^c f_k(x, y),      with   mean_xy M_c + b_c = S_c   exactly.

The classifier is a linear SVM (one-vs-rest, as in the paper) or a multinomial logistic
regression, fit by scikit-learn on centered and scaled features (by default one scale for all
channels, see :func:`fit_linear`); the scaling is folded back into the weights (``w' = w / s``,
``b' = b - w . (m / s)``) so that the stored probe acts on the raw pooled features and its CAM
stays exact.

Two classes: scikit-learn gives one decision function ``d`` (positive for the second class).
The probe stores two rows so that the usual argmax and CAM code work unchanged:
``[-w, w]`` for the SVM (the second row's score is ``d`` itself, the first row's ``-d``) and
``[-w/2, w/2]`` for logistic regression (then ``softmax`` of the two scores is exactly
``predict_proba``, ``sigmoid(d)``).

Pooled features are cached on disk, keyed by the backbone's identity (name, architecture
options, a hash of all its weights but its own classifier's, the feature width and pooling),
the preprocessing, and the list of image files with their sizes and modification times (and
crop boxes); a second fit with other settings reads them back instead of running the network
again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from camloc.data.base import Sample, Split
from camloc.data.images import ImageError, load_image
from camloc.extract import extract, pool
from camloc.io import atomic_write_with
from camloc.models.net import CamNet

PROBE_FORMAT = "camloc-probe/1"
CACHE_FORMAT = "camloc-features/1"
DEFAULT_CS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
Classifier = Literal["svm", "logreg"]
Scaling = Literal["global", "channel"]
Box = Sequence[int]


class ProbeError(ValueError):
    """A probe, its data or its feature cache cannot be used; ``str(err)`` is one line."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def default_cache_dir() -> str:
    """``$CAMLOC_CACHE/features`` if set, else ``~/.cache/camloc/features``."""
    root = os.environ.get("CAMLOC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "camloc")
    return os.path.join(root, "features")


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


def feature_key(net: CamNet, samples: Sequence[Sample], crops: Sequence[Box | None] | None = None) -> str:
    """SHA-256 naming the pooled features of ``samples`` (optionally cropped) under ``net``."""
    data = [
        _file_entry(s.path) + [None if crops is None or crops[i] is None else [int(v) for v in crops[i]]]
        for i, s in enumerate(samples)
    ]
    blob = json.dumps({"format": CACHE_FORMAT, "backbone": backbone_identity(net), "data": data}, sort_keys=True)
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
) -> Features:
    """Run the frozen backbone once over ``samples`` in batches -> pooled features.

    Unreadable images are left out with a one-line reason in ``skipped``.
    """
    k = feature_dim(net)
    rows: list[np.ndarray] = []
    index: list[int] = []
    skipped: list[str] = []
    net.module.eval()
    bar = tqdm(total=len(samples), desc=desc, unit="img", disable=None if progress else True, file=sys.stderr)
    with torch.inference_mode():
        for start in range(0, len(samples), max(1, int(batch_size))):
            images, where = [], []
            for i in range(start, min(start + batch_size, len(samples))):
                try:
                    img = load_image(samples[i].path)
                except ImageError as err:
                    skipped.append(str(err))
                    continue
                images.append(crop_box(img, None if crops is None else crops[i]))
                where.append(i)
            if images:
                features, _ = extract(net, net.preprocess(images).to(net.device))
                rows.append(pool(features, net.head.pooling).float().cpu().numpy())
                index.extend(where)
            bar.update(min(batch_size, len(samples) - start))
    bar.close()
    x = np.concatenate(rows) if rows else np.zeros((0, k), np.float32)
    return Features(x=x.astype(np.float32), index=np.asarray(index, np.int64), skipped=skipped)


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
        raise ProbeError(f"{path}: corrupt feature cache ({_one_line(err)[:120]})") from None
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
) -> Features:
    """Pooled features of ``samples`` (cropped to ``crops`` if given), cached in ``cache_dir``.

    The cache file is ``<cache_dir>/<key>.npz`` with ``key`` from :func:`feature_key`, so a
    change of backbone weights, preprocessing, image files (size or mtime) or crops makes a new
    entry. A corrupt cache file is reported with a one-line warning and rebuilt. Without
    ``cache_dir`` nothing is cached.
    """
    if isinstance(samples, Split):
        samples = samples.samples
    samples = list(samples)
    if crops is not None and len(crops) != len(samples):
        raise ProbeError(f"{len(crops)} crop boxes for {len(samples)} images")
    if cache_dir is None:
        return compute_features(net, samples, crops, batch_size, progress, desc)
    key = feature_key(net, samples, crops)
    path = os.path.join(os.path.expanduser(os.fspath(cache_dir)), f"{key[:40]}.npz")
    if os.path.exists(path):
        try:
            return load_feature_cache(path, key, len(samples))
        except ProbeError as err:
            warnings.warn(f"{err}; recomputing it", stacklevel=2)
    feats = compute_features(net, samples, crops, batch_size, progress, desc)
    save_feature_cache(path, key, feats)
    feats.cache_path = path
    return feats


# --------------------------------------------------------------------------- the probe


@dataclass
class Probe:
    """A linear classifier on a backbone's pooled features: ``S = weight @ F + bias``.

    Attributes:
        backbone: the backbone's registry name (``CamNet.name``).
        feature_dim: ``K``, the width of the pooled features.
        weight: ``(C, K)`` float32 weights acting on the raw pooled features.
        bias: ``(C,)`` float32 biases.
        class_names: the ``C`` class names.
        classifier: ``"svm"`` or ``"logreg"``.
        C: the regularization constant chosen on the validation split.
        backbone_sha256: hash of the backbone weights the features came from.
        info: what the fit measured (accuracies per C, sizes), JSON-able.
        preprocessing: the backbone's preprocessing (``Preprocessing.to_dict()``) when the
            features were extracted; :func:`attach_probe` gives it back to the net.
    """

    backbone: str
    feature_dim: int
    weight: np.ndarray
    bias: np.ndarray
    class_names: list[str]
    classifier: str = "svm"
    C: float = 1.0
    backbone_sha256: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def decision(self, x: np.ndarray) -> np.ndarray:
        """``(N, K)`` pooled features -> ``(N, C)`` scores ``x @ weight.T + bias`` (float64)."""
        return np.asarray(x, np.float64) @ self.weight.astype(np.float64).T + self.bias.astype(np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decision(x).argmax(axis=1)

    def linear(self) -> nn.Linear:
        """The probe as an ``nn.Linear(K, C)`` (what :attr:`CamNet.probe` holds)."""
        layer = nn.Linear(self.feature_dim, self.num_classes)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.asarray(self.weight, np.float32)))
            layer.bias.copy_(torch.from_numpy(np.asarray(self.bias, np.float32)))
        return layer.requires_grad_(False).eval()


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    classifier: Classifier = "svm",
    C: float = 1.0,
    seed: int = 0,
    scaling: Scaling = "global",
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Fit a linear classifier on scaled features and fold the scaling into its weights.

    The features are centered per channel and divided by ``s``: one number for all channels
    (``scaling="global"``, the root-mean-square of the centered features; it keeps the channels'
    relative weights; on the text benchmark 92.5 % against 87.5 % validation accuracy) or
    each channel's standard deviation (``"channel"``, scikit-learn's standardization). Then
    ``w' = w / s`` and ``b' = b - w . (m / s)``.

    Returns ``(weight (C, K), bias (C,), estimator)`` where ``estimator`` is the fitted
    scikit-learn pipeline (scaling + classifier) and ``x @ weight.T + bias`` equals its
    ``decision_function`` (one-vs-rest SVM; two classes as documented in the module).
    ``y`` holds class indices ``0..n_classes-1``, each present at least once.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import LinearSVC

    if classifier == "svm":
        clf = LinearSVC(C=C, dual="auto", max_iter=5000, random_state=seed)
    elif classifier == "logreg":
        clf = LogisticRegression(C=C, max_iter=2000)
    else:
        raise ProbeError(f"unknown classifier '{classifier}' (svm or logreg)")
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    if scaling == "channel":
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
    elif scaling == "global":
        scale = np.full(x.shape[1], float(np.sqrt(((x - mean) ** 2).mean())) or 1.0)
    else:
        raise ProbeError(f"unknown scaling '{scaling}' (global or channel)")

    def transform(v: np.ndarray) -> np.ndarray:
        return (np.asarray(v, np.float64) - mean) / scale

    est = make_pipeline(FunctionTransformer(transform), clf)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*converge.*")
        est.fit(x, np.asarray(y))
    present = [int(c) for c in clf.classes_]
    if present != list(range(n_classes)):
        raise ProbeError(f"classes {sorted(set(range(n_classes)) - set(present))} have no training images")
    coef = clf.coef_ / scale
    intercept = clf.intercept_ - clf.coef_ @ (mean / scale)
    if n_classes == 2:
        half = 1.0 if classifier == "svm" else 0.5
        coef = np.concatenate([-half * coef, half * coef])
        intercept = np.concatenate([-half * intercept, half * intercept])
    return coef.astype(np.float32), intercept.astype(np.float32), est


def _carve_validation(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a stratified validation part; every class keeps >= 1 training image."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = min(int(round(fraction * len(idx))), len(idx) - 1)
        if n > 0:
            val[rng.choice(idx, size=n, replace=False)] = True
    return val


def _labels(split: Split, feats: Features) -> np.ndarray:
    return np.asarray([split.samples[i].label for i in feats.index], np.int64)


def fit_probe(
    net: CamNet,
    train: Split,
    val: Split | None = None,
    *,
    classifier: Classifier = "svm",
    Cs: Sequence[float] = DEFAULT_CS,
    val_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
    crops: tuple[Sequence[Box | None] | None, Sequence[Box | None] | None] = (None, None),
    scaling: Scaling = "global",
) -> Probe:
    """Fit a linear probe on the pooled features of ``net`` (frozen) with image labels only.

    ``C`` is chosen among ``Cs`` by accuracy on ``val`` (or on a stratified ``val_fraction`` of
    ``train`` when ``val`` is None; ties go to the smaller ``C``); the returned probe is then
    refit with that ``C`` on training + validation images. ``crops`` optionally gives a crop box
    per sample of ``train`` and of ``val``. Features are cached in ``cache_dir`` (see
    :func:`extract_features`).

    Raises:
        ProbeError: fewer than 2 classes, a class without readable images, a validation class
            the training data lacks, an unknown classifier (one line).
    """
    _check_classifier(classifier, Cs)
    what = train.name or "training data"
    _check_split_classes(train, what)
    ftr = extract_features(net, train, crops=crops[0], cache_dir=cache_dir, batch_size=batch_size,
                           progress=progress, desc=f"features {what}")
    ytr = _labels(train, ftr)
    xva = yva = None
    skipped = len(ftr.skipped)
    if val is not None:
        fva = extract_features(net, val, crops=crops[1], cache_dir=cache_dir, batch_size=batch_size,
                               progress=progress, desc=f"features {val.name or 'validation'}")
        xva, yva = fva.x, align_labels(train.classes, val, fva, what=val.name or "validation data")
        skipped += len(fva.skipped)
    probe = fit_probe_on_features(net, ftr.x, ytr, train.classes, xva, yva, classifier=classifier, Cs=Cs,
                                  val_fraction=val_fraction, seed=seed, what=what, scaling=scaling)
    probe.info["skipped"] = skipped
    return probe


def _check_split_classes(split: Split, what: str) -> None:
    """Fail fast, before any forward pass, on a split with < 2 classes or an empty class."""
    if len(split.classes) < 2:
        raise ProbeError(f"{what}: a probe needs at least 2 classes, the data has {len(split.classes)}")
    counts = np.bincount([s.label for s in split.samples], minlength=len(split.classes))
    empty = [split.classes[i] for i in np.flatnonzero(counts[: len(split.classes)] == 0)]
    if empty:
        more = f" (and {len(empty) - 1} more classes)" if len(empty) > 1 else ""
        raise ProbeError(f"{what}: class '{empty[0]}'{more} has no images")


def _check_classifier(classifier: str, Cs: Sequence[float]) -> None:
    if classifier not in ("svm", "logreg"):
        raise ProbeError(f"unknown classifier '{classifier}' (svm or logreg)")
    if not Cs or any(not (float(c) > 0) for c in Cs):
        raise ProbeError(f"C values must be positive numbers, got {list(Cs)}")


def fit_probe_on_features(
    net: CamNet,
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    xval: np.ndarray | None = None,
    yval: np.ndarray | None = None,
    *,
    classifier: Classifier = "svm",
    Cs: Sequence[float] = DEFAULT_CS,
    val_fraction: float = 0.2,
    seed: int = 0,
    what: str = "training data",
    scaling: Scaling = "global",
) -> Probe:
    """:func:`fit_probe` on pooled features already at hand (``x (N, K)``, ``y`` class indices)."""
    _check_classifier(classifier, Cs)
    classes = list(class_names)
    y = np.asarray(y, np.int64)
    if len(classes) < 2:
        raise ProbeError(f"{what}: a probe needs at least 2 classes, the data has {len(classes)}")
    counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), int)
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        more = f" (and {len(empty) - 1} more classes)" if len(empty) > 1 else ""
        raise ProbeError(f"{what}: class '{empty[0]}'{more} has no readable images")
    if xval is None:
        mask = _carve_validation(y, val_fraction, seed)
        xtr, ytr, xva, yva = x[~mask], y[~mask], x[mask], y[mask]
    else:
        xtr, ytr, xva, yva = x, y, np.asarray(xval), np.asarray(yval, np.int64)
    n_classes = len(classes)
    scores: dict[str, float] = {}
    best_c, best_acc = float(min(Cs)), None
    if len(yva):
        for C in sorted(float(c) for c in Cs):
            w, b, _ = fit_linear(xtr, ytr, n_classes, classifier, C, seed, scaling)
            acc = float(np.mean((xva @ w.T + b).argmax(1) == yva))
            scores[f"{C:g}"] = acc
            if best_acc is None or acc > best_acc:
                best_c, best_acc = C, acc
    x_all, y_all = np.concatenate([xtr, xva]), np.concatenate([ytr, yva])
    w, b, _ = fit_linear(x_all, y_all, n_classes, classifier, best_c, seed, scaling)
    info = {
        "val_accuracy": best_acc,
        "val_accuracy_by_C": scores,
        "train_accuracy": float(np.mean((x_all @ w.T + b).argmax(1) == y_all)),
        "n_train": int(len(ytr)),
        "n_val": int(len(yva)),
        "validation": "given split" if xval is not None else f"{val_fraction:g} of the training images",
        "scaling": scaling,
    }
    return Probe(
        backbone=net.name, feature_dim=feature_dim(net), weight=w, bias=b, class_names=classes,
        classifier=classifier, C=best_c, backbone_sha256=backbone_digest(net), info=info,
        preprocessing=net.preprocessing.to_dict(),
    )


def align_labels(probe_classes: Sequence[str], split: Split, feats: Features, what: str = "data") -> np.ndarray:
    """Labels of ``feats``'s samples as indices into ``probe_classes`` (matched by name).

    Raises:
        ProbeError: a class of the probe is not among the data's classes, or an image's class
            is not a class of the probe.
    """
    index = {c: i for i, c in enumerate(probe_classes)}
    known = set(split.classes)
    for c in probe_classes:
        if c not in known:
            raise ProbeError(f"{what}: the probe's class '{c}' is not among the data's {len(split.classes)} classes")
    out = []
    for i in feats.index:
        s = split.samples[i]
        name = split.classes[s.label]
        if name not in index:
            raise ProbeError(f"{what}: {s.image_id}: class '{name}' is not a class of the probe")
        out.append(index[name])
    return np.asarray(out, np.int64)


def evaluate_probe(
    net: CamNet,
    probe: Probe,
    split: Split,
    *,
    crops: Sequence[Box | None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Accuracy of ``probe`` on ``split`` -> ``{"accuracy", "n", "skipped", "predictions"}``.

    ``predictions`` is an ``(n_samples,)`` array of probe class indices (-1 for a skipped image).
    """
    check_probe(net, probe)
    feats = extract_features(net, split, crops=crops, cache_dir=cache_dir, batch_size=batch_size,
                             progress=progress, desc=f"features {split.name or 'data'}")
    y = align_labels(probe.class_names, split, feats, what=split.name or "data")
    pred = probe.predict(feats.x) if len(y) else np.zeros(0, np.int64)
    full = np.full(len(split.samples), -1, np.int64)
    full[feats.index] = pred
    return {
        "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
        "n": int(len(y)),
        "skipped": feats.skipped,
        "predictions": full,
    }


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
    try:
        d = torch.load(name, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ProbeError(f"{name}: no such probe file") from None
    except IsADirectoryError:
        raise ProbeError(f"{name}: is a directory, not a probe file") from None
    except Exception as err:  # unpickling errors come in many types
        raise ProbeError(f"{name}: not a probe file ({_one_line(err)[:120]})") from None
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
            from camloc.models.net import Preprocessing

            Preprocessing.from_dict(probe.preprocessing)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ProbeError(f"{name}: probe file lacks or garbles {_one_line(err)[:80]}") from None
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
    if probe.preprocessing:
        from camloc.models.net import Preprocessing

        net.preprocessing = Preprocessing.from_dict(probe.preprocessing)
    return net


# --------------------------------------------------------------------------- CAM boxes


@dataclass
class CamBox:
    """The CAM box of one class on one image, in original-image pixels.

    Attributes:
        box: ``[x0, y0, x1, y1]`` inclusive, or ``None`` for a constant / non-finite map.
        peak: ``(x, y)`` of the upsampled map's maximum, or ``None`` likewise.
        size: ``(width, height)`` of the image (after cropping, if a crop was given).
    """

    box: list[int] | None
    peak: tuple[int, int] | None
    size: tuple[int, int]


@dataclass
class MapResult:
    """One image's forward pass: the raw map ``M_c`` of the asked class (feature resolution,
    float32), the image's ``(width, height)`` and all class scores ``(C,)``."""

    map: np.ndarray
    size: tuple[int, int]
    logits: np.ndarray


def cam_maps(
    net: CamNet,
    samples: Sequence[Sample],
    classes: Sequence[int],
    *,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "CAMs",
) -> tuple[list[MapResult | None], list[str]]:
    """The raw CAM of class ``classes[i]`` on image ``i`` and its scores, one forward pass per
    image; ``None`` for an unreadable image, whose one-line reason is in the second list."""
    from camloc.extract import cam

    if len(classes) != len(samples):
        raise ProbeError(f"{len(classes)} classes for {len(samples)} images")
    out: list[MapResult | None] = [None] * len(samples)
    skipped: list[str] = []
    bar = tqdm(total=len(samples), desc=desc, unit="img", disable=None if progress else True, file=sys.stderr)
    for start in range(0, len(samples), max(1, int(batch_size))):
        images, where = [], []
        for i in range(start, min(start + batch_size, len(samples))):
            try:
                images.append(load_image(samples[i].path))
                where.append(i)
            except ImageError as err:
                skipped.append(str(err))
        if images:
            wanted = torch.as_tensor([[int(classes[i])] for i in where], device=net.device)
            res = cam(net, net.preprocess(images).to(net.device), classes=wanted)
            maps = res.maps[:, 0].float().cpu().numpy()
            logits = res.logits.float().cpu().numpy()
            for j, i in enumerate(where):
                out[i] = MapResult(maps[j], images[j].size, logits[j])
        bar.update(min(batch_size, len(samples) - start))
    bar.close()
    return out, skipped


def box_and_peak(raw: np.ndarray, size: tuple[int, int], threshold: float = 0.2) -> CamBox:
    """The paper's box and the peak of a raw map upsampled to ``size = (width, height)``.

    The map is upsampled bilinearly to the image, min-max normalized, thresholded at
    ``threshold`` (of its max) and the bounding box of the largest connected component is kept
    (:func:`camloc.boxes.boxes_from_map`); the peak is the upsampled map's argmax.
    """
    from camloc.boxes import boxes_from_map
    from camloc.cam import map_status, upsample

    w, h = size
    m = upsample(raw, (h, w))
    if map_status(m) is not None:
        return CamBox(None, None, (w, h))
    boxes = boxes_from_map(m, threshold)
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return CamBox(boxes[0] if boxes else None, (int(x), int(y)), (w, h))


def cam_boxes(
    net: CamNet,
    samples: Sequence[Sample],
    classes: Sequence[int],
    *,
    threshold: float = 0.2,
    batch_size: int = 32,
    progress: bool = True,
    desc: str = "CAM boxes",
) -> tuple[list[CamBox | None], list[str]]:
    """The paper's box (see :func:`box_and_peak`) for class ``classes[i]`` on image ``i``, one
    forward pass per image. Returns one :class:`CamBox` per sample (``None`` for an unreadable
    image) and the one-line reasons for those."""
    maps, skipped = cam_maps(net, samples, classes, batch_size=batch_size, progress=progress, desc=desc)
    return [None if m is None else box_and_peak(m.map, m.size, threshold) for m in maps], skipped
