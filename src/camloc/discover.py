"""Dataset-level pattern discovery: what a class is recognized by, over a folder of images.

For each class (the ones asked for, or the ones most often predicted), every image that counts
for it gives one region: the box of the class's CAM (the shared box rule,
:func:`camloc.localize.predictions_for`). The regions are cropped, embedded with the backbone's
globally pooled features (a second pipeline pass, over the crops), clustered with k-means on the
L2-normalized embeddings (K chosen by silhouette, or fixed), and reported per class as patterns:
each with its share of the class's images, its exemplar crops (closest to the centroid) and the
labels the backbone's own classifier (ImageNet for the stock backbones) gives its crops. This is
the paper's "informative regions" analysis, and the way to catch a class recognized by a
shortcut (text, a watermark, a background).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camloc.errors import one_line
from camloc.pixels.geometry import Resize

THRESHOLD = 0.5  # the box rule's threshold for regions: tighter than the paper's 0.2 (BENCHMARKS.md, scenes)
K_RANGE = (2, 5)  # the K tried by silhouette when --patterns is not given
EXEMPLARS = 5  # crops shown per pattern
LABELS = 3  # most frequent crop labels reported per pattern


@dataclass
class Region:
    """One image's region for one class: the CAM box in original pixels and the class's score."""

    index: int
    name: str
    source: Any
    box: list[int]
    logit: float


@dataclass
class ClassPatterns:
    """The patterns of one class: ``patterns`` are dicts in the ``discover.json`` layout; ``exemplar_crops``
    holds, per pattern, the exemplars' crops (RGB arrays) for the figure."""

    class_index: int
    label: str
    num_images: int
    k_choice: str
    silhouette: float | None
    patterns: list[dict[str, Any]] = field(default_factory=list)
    exemplar_crops: list[list[np.ndarray]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"class_index": self.class_index, "label": self.label, "num_images": self.num_images,
                "k_choice": self.k_choice, "silhouette": self.silhouette, "patterns": self.patterns}


def parse_classes(text: str, class_names: Sequence[str], where: str = "--classes",
                  model: str = "the model") -> list[int]:
    """``"tabby,#281"`` -> class indices of ``model``: each item resolved by
    :func:`camloc.classes.resolve_class` (an exact label first, then ``#N``); one-line error
    naming the item and the model otherwise."""
    from camloc.classes import resolve_classes

    return resolve_classes(text, class_names, model, where)


def choose_k(x: np.ndarray, patterns: int | None = None, k_range: tuple[int, int] = K_RANGE,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, str, float | None]:
    """Cluster the rows of ``x`` (L2-normalized embeddings): ``(labels, centroids, how K was
    chosen, silhouette)``. ``patterns`` fixes K (capped at the number of distinct rows);
    otherwise K in ``k_range`` maximizing the silhouette; one pattern for fewer than 3 rows."""
    from camloc.extras import require

    require("sklearn", "discover", "camloc discover's clustering")
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(x)
    distinct = len(np.unique(np.round(x, 6), axis=0))
    if patterns is not None:
        ks, how = [max(1, min(int(patterns), distinct))], "fixed"
    else:
        ks = [k for k in range(k_range[0], k_range[1] + 1) if k < n and k <= distinct]
        how = "silhouette"
        if not ks:
            ks, how = [1], "single"
    best = None
    for k in ks:
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
        score = float(silhouette_score(x, km.labels_)) if 1 < k < n else None
        if best is None or (score if score is not None else -2.0) > (best[3] if best[3] is not None else -2.0):
            best = (km.labels_, km.cluster_centers_, how, score)
    labels, centers, how, score = best
    return labels, centers, how, None if score is None else round(score, 6)


def _decode_crop(source: Any, resize: Resize, net_shape: tuple[int, int], display: int, name: str, draft: bool):
    """The pipeline's decoder for a ``(source, box)`` pair: the box cut from the full image."""
    from camloc.pipeline.run import decode_or_error

    src, box = source
    try:
        img = open_image(src, name)
    except Exception as err:  # noqa: BLE001 - the decoder's one-line reason
        return f"{name}: {one_line(err)}"
    crop = img.crop((box[0], box[1], box[2] + 1, box[3] + 1))
    return decode_or_error(crop, resize, net_shape, display, name, False)


def open_image(source: Any, name: str):
    """A path, PIL image or array -> the RGB PIL image (EXIF orientation applied)."""
    from camloc.pixels.decode import load_image
    from camloc.pixels.decode import image_of

    if isinstance(source, (str, os.PathLike)):
        return load_image(source)
    return image_of(source, name)


def crop_of(region: Region, side: int = 112) -> np.ndarray:
    """A region's crop fitted in a ``side`` x ``side`` white square (for figures)."""
    from PIL import Image

    img = open_image(region.source, region.name)
    b = region.box
    crop = img.crop((b[0], b[1], b[2] + 1, b[3] + 1))
    s = side / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * s)), max(1, round(crop.height * s))), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
    return np.asarray(canvas)


def find_regions(net, inputs: Iterable[Any], classes: Sequence[int] | None, topk_classes: int, within: int = 1,
                 threshold: float = THRESHOLD, norm: str = "minmax", resize: Resize | None = None,
                 batch_size: int = 16, workers: int | None = None, backend: Any = "auto",
                 progress: bool | None = None, isolate: bool = False) -> tuple[dict[int, list[Region]], list[str], int]:
    """The first pass: ``({class: regions}, error lines, images read)``.

    An image counts for a class when the class is among its top-``within`` predictions
    (``within = 0``, only with ``classes``: every image). Without ``classes``, the
    ``topk_classes`` classes most often predicted first (ties: lower index) are kept.
    """
    from camloc.localize import BOX_CAP, default_resize, predictions_for
    from camloc.pipeline.run import Job, Pipeline, as_jobs

    asked = tuple(int(c) for c in classes) if classes else ()
    pipe = Pipeline(net, resize=resize or default_resize(net), backend=backend, topk=int(within),
                    batch_size=batch_size, workers=workers, progress=progress, desc=f"discover ({net.name})",
                    isolate=isolate)
    jobs = (Job(j.source, j.index, j.name, classes=asked) for j in as_jobs(inputs))
    regions: dict[int, list[Region]] = {}
    top1: Counter[int] = Counter()
    errors: list[str] = []
    seen = 0
    for res in pipe.run(jobs):
        seen += 1
        if res.error is not None:
            errors.append(res.error)
            continue
        top = [int(c) for c in res.classes]
        if top:
            top1[top[0]] += 1
        if asked:
            keep = [i for i, c in enumerate(asked) if within == 0 or c in top]
            cls, maps = np.array([asked[i] for i in keep], np.int64), res.extra_maps[keep]
        else:
            cls, maps = res.classes, res.maps
        if not len(cls):
            continue
        preds = predictions_for(net, res.logits, cls, maps, res.size, threshold, norm=norm, box_cap=BOX_CAP)
        for p in preds:
            if p["box"] is not None:
                regions.setdefault(p["class_index"], []).append(
                    Region(res.index, res.name, res.job.source, p["box"], p["logit"]))
    if asked:
        chosen = list(asked)
    else:
        chosen = [c for c, _ in sorted(top1.items(), key=lambda kv: (-kv[1], kv[0]))[:topk_classes]]
    return {c: regions.get(c, []) for c in chosen}, errors, seen


def embed_regions(net, regions: Sequence[Region], batch_size: int = 16, workers: int | None = None,
                  backend: Any = "auto", progress: bool | None = None,
                  head_names: Sequence[str] | None = None, isolate: bool = False
                  ) -> tuple[np.ndarray, list[str | None]]:
    """The second pass: each region's crop through the backbone (squashed to its input size):
    ``(N, K)`` pooled features and the backbone's own top-1 label per crop (``None`` when the
    crop could not be read; its row is then NaN). ``head_names``: the names of the backbone's
    own classes, when a probe replaced them in ``net.class_names``."""
    from camloc.pipeline.run import Job, Pipeline

    own = copy.copy(net)  # the backbone's own head, even when a probe is attached to ``net``
    if net.probe is not None:
        own.probe = None
        names = head_names
        own.class_names = list(names) if names else [f"class_{i}" for i in range(net.head.classifier.out_features)]
    pipe = Pipeline(own, resize=Resize("squash"), backend=backend, topk=1, keep="pooled", batch_size=batch_size,
                    workers=workers, decoder=_decode_crop, progress=progress, desc="discover crops", isolate=isolate)
    feats: list[np.ndarray] = []
    labels: list[str | None] = []
    jobs = (Job((r.source, r.box), i, r.name) for i, r in enumerate(regions))
    for res in pipe.run(jobs):
        if res.error is not None:
            feats.append(None)  # type: ignore[arg-type]
            labels.append(None)
            continue
        feats.append(res.pooled.astype(np.float32))
        labels.append(own.class_names[int(res.classes[0])])
    dim = next((f.shape[0] for f in feats if f is not None), 1)
    x = np.stack([f if f is not None else np.full(dim, np.nan, np.float32) for f in feats]) if feats else \
        np.zeros((0, dim), np.float32)
    return x, labels


def cluster_class(class_index: int, label: str, regions: Sequence[Region], x: np.ndarray,
                  crop_labels: Sequence[str | None], patterns: int | None = None, exemplars: int = EXEMPLARS,
                  k_range: tuple[int, int] = K_RANGE, seed: int = 0, crops: bool = True) -> ClassPatterns:
    """One class's regions and their embeddings -> its patterns, largest share first."""
    ok = [i for i in range(len(regions)) if np.isfinite(x[i]).all()]
    out = ClassPatterns(class_index, label, len(ok), "none", None)
    if not ok:
        return out
    xs = x[ok].astype(np.float64)
    xs /= np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-12)
    assign, centers, out.k_choice, out.silhouette = choose_k(xs, patterns, k_range, seed)
    groups = [np.flatnonzero(assign == k) for k in range(len(centers))]
    groups = sorted((g for g in groups if len(g)), key=lambda g: (-len(g), ok[g[0]]))
    for number, g in enumerate(groups, start=1):
        center = xs[g].mean(axis=0)
        dist = np.linalg.norm(xs[g] - center, axis=1)
        order = g[np.argsort(dist, kind="stable")]
        members = [regions[ok[i]] for i in g]
        counts = Counter(crop_labels[ok[i]] for i in g if crop_labels[ok[i]] is not None)
        shown = [int(i) for i in order[:exemplars]]
        out.patterns.append({
            "pattern": number,
            "share": round(len(g) / len(ok), 6),
            "num_images": len(g),
            "labels": [{"label": n, "count": c} for n, c in counts.most_common(LABELS)],
            "exemplars": [{"image": regions[ok[i]].name, "box": regions[ok[i]].box, "label": crop_labels[ok[i]],
                           "distance": round(float(np.linalg.norm(xs[i] - center)), 6)} for i in shown],
            "images": sorted(m.name for m in members),
        })
        if crops:
            out.exemplar_crops.append([crop_of(regions[ok[i]]) for i in shown])
    return out


def discover(net, inputs: Iterable[Any], classes: Sequence[int] | None = None, topk_classes: int = 3,
             patterns: int | None = None, within: int = 1, threshold: float = THRESHOLD, norm: str = "minmax",
             resize: Resize | None = None, batch_size: int = 16, workers: int | None = None, backend: Any = "auto",
             exemplars: int = EXEMPLARS, k_range: tuple[int, int] = K_RANGE, seed: int = 0, crops: bool = True,
             progress: bool | None = False,
             head_names: Sequence[str] | None = None, isolate: bool = False
             ) -> tuple[list[ClassPatterns], list[str], int]:
    """Patterns of each class over ``inputs`` (paths, PIL images or arrays):
    ``(per-class patterns, error lines, images read)``. See the module docstring; ``classes``
    are class indices (:func:`parse_classes`), else the ``topk_classes`` most predicted;
    ``head_names`` as in :func:`embed_regions`; ``isolate`` decodes in worker processes."""
    _check(patterns, within, topk_classes, classes, exemplars)
    regions, errors, seen = find_regions(net, inputs, classes, topk_classes, within, threshold, norm, resize,
                                         batch_size, workers, backend, progress, isolate)
    flat = [r for rs in regions.values() for r in rs]
    x, crop_labels = embed_regions(net, flat, batch_size, workers, backend, progress, head_names, isolate)
    out, start = [], 0
    for c, rs in regions.items():
        part = slice(start, start + len(rs))
        start += len(rs)
        out.append(cluster_class(c, net.class_names[c], rs, x[part], crop_labels[part], patterns, exemplars,
                                 k_range, seed, crops))
    return out, errors, seen


def _check(patterns: Any, within: Any, topk_classes: Any, classes: Any, exemplars: Any) -> None:
    if patterns is not None and (isinstance(patterns, bool) or not isinstance(patterns, int) or patterns < 1):
        raise ValueError(f"patterns must be an integer of at least 1, got {patterns!r}")
    if isinstance(within, bool) or not isinstance(within, int) or within < 0 or (within == 0 and not classes):
        raise ValueError(f"within must be an integer of at least 1 (0 only with classes), got {within!r}")
    if not classes and (isinstance(topk_classes, bool) or not isinstance(topk_classes, int) or topk_classes < 1):
        raise ValueError(f"topk_classes must be an integer of at least 1, got {topk_classes!r}")
    if isinstance(exemplars, bool) or not isinstance(exemplars, int) or exemplars < 1:
        raise ValueError(f"exemplars must be an integer of at least 1, got {exemplars!r}")
