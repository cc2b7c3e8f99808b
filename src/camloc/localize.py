"""Images -> top-k classes, maps and boxes: the main job, one forward pass per batch.

A thin consumer of the inference pipeline (:class:`camloc.pipeline.Pipeline`): the pipeline
decodes, batches and runs the net; this module turns each result into a record in the results
schema of DESIGN.md. An image that cannot be processed gives ``{"image": ..., "error": "<one
line>"}`` and the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from camloc.boxes import BOX_CAP, paper_boxes
from camloc.models.net import CamNet
from camloc.pixels.geometry import Resize
from camloc.readings import DEFAULT_NORM, check_norm, normalize_map, upsample
from camloc.scores import softmax

ImageInput = str | os.PathLike | Image.Image | np.ndarray
DISPLAY = 1024  # the longer side of the image kept for figures



def default_resize(net: CamNet) -> Resize:
    """Localization's default geometry: the default net (``camloc.load_model()``) at its shorter
    side :data:`camloc.defaults.SIDE`; for another convolutional net, the whole image, aspect kept,
    shorter side ``S`` = the net's own input side rounded to its stride (224 for a 224 net: the
    aspect sizes 224-288 classify alike on real photos, and 224 is the fastest; see BENCHMARKS.md,
    geometry and pipeline). A net with attention blocks
    (ViT, BEiT, Swin, MaxViT, ...) is usually built for one input size, so it keeps its square
    input (``squash``)."""
    if getattr(net, "default_side", None):
        return Resize("aspect", int(net.default_side))
    if has_attention(net):
        return Resize("squash")
    from camloc.pixels.geometry import side_for

    return Resize("aspect", side_for(net.preprocessing.shape))


def has_attention(net: CamNet) -> bool:
    """Whether the net holds attention blocks (by their class names, which every library spells
    with "Attention")."""
    return any("Attention" in type(m).__name__ for m in net.module.modules())


@dataclass
class Localized:
    """One image's outcome: its record, and (when it succeeded) its top-k maps and, when asked
    for, the image for figures.

    ``maps`` are the raw CAMs at feature resolution, ``(k, h, w)``, in the record's rank order;
    ``display`` is the whole image, ``(h', w', 3)`` uint8, its longer side at most
    :data:`DISPLAY` (or the original size if smaller).
    """

    record: dict[str, Any]
    display: np.ndarray | None = None
    maps: np.ndarray | None = None
    index: int = 0  # the input's position in the stream


def predictions_for(
    net: CamNet,
    logits: np.ndarray,
    classes: np.ndarray,
    maps: np.ndarray,
    size: tuple[int, int],
    threshold: float,
    all_boxes: bool = False,
    norm: str = "minmax",
    box_cap: int = 0,
    temperature: float = 1.0,
) -> list[dict[str, Any]]:
    """The record's ``predictions`` for one image; ``ValueError`` ("non-finite scores ...") when a
    logit is NaN or infinite, so that no NaN reaches a record.

    Args:
        logits: ``(C,)`` class scores; classes: ``(k,)``; maps: ``(k, h, w)`` raw CAMs;
        size: ``(width, height)`` of the original image; norm: how the map is read for the
        box (:data:`camloc.readings.NORMS`); box_cap: boxes are found on the map upsampled to the
        image, or, for an image whose longer side exceeds ``box_cap > 0``, to the image scaled
        down to that side, then scaled back (within half a step of the full-size result, see
        :func:`camloc.boxes.boxes_from_raw`); temperature: ``score`` is ``softmax(logits /
        temperature)`` (:mod:`camloc.scores`; ``logit`` stays raw).
    """
    if not np.isfinite(logits).all():  # a NaN would reach results.jsonl as "score": NaN, not JSON
        bad = int((~np.isfinite(logits)).sum())
        raise ValueError(f"non-finite scores: {bad} of {logits.size} logits are NaN or infinite "
                         "(NaN or inf in the input or the weights)")
    probs = softmax(logits, temperature)
    width, height = size
    preds = []
    for rank, (c, m) in enumerate(zip(classes.tolist(), maps), start=1):
        pred: dict[str, Any] = {
            "rank": rank,
            "class_index": int(c),
            "label": net.class_names[c],
            "score": round(float(probs[c]), 6),
            "logit": round(float(logits[c]), 6),
            "box": None,
            "threshold": threshold,
            "norm": norm,
        }
        boxes, warning = paper_boxes(m, size, threshold, norm, box_cap, all_boxes)
        if boxes:
            pred["box"] = boxes[0]
            if all_boxes:
                pred["boxes"] = boxes
        if warning is not None:
            pred["warning"] = warning
        preds.append(pred)
    return preds


@dataclass(frozen=True)
class LocalizeOptions:
    """How a pass's scores and maps become a record's predictions: one object for
    :func:`iter_localize`, the command and the server.

    Attributes:
        topk: classes per image, best first, each with its own map and box.
        threshold: the box rule's fraction of the read map (the paper's 0.2).
        norm: how a map is read for its box (:data:`camloc.readings.NORMS`).
        box_cap: boxes are found on the map upsampled to the image, or for a larger image to a
            grid of this longer side (:func:`camloc.boxes.box_grid`; 0: the image itself).
        clamp_negative: maps from the classifier's positive weights only.
        tta: the views (:class:`camloc.pipeline.views.TTA`: scales, flip), fused; ``None``: one view.
        method: a gradient map method (:mod:`camloc.methods`) instead of CAM.
        all_boxes: also list every component's box (``"boxes"``), largest first.
        calibrated: what each prediction's ``"calibrated"`` says (the threshold and reading came
            from a calibration file, :mod:`camloc.calibrate`).
        temperature: ``score`` is ``softmax(logits / T)``; ``None``: :func:`score_temperature`
            (the shipped one of an embedded net at the run's views, else 1). ``logit`` stays raw.
    """

    topk: int = 5
    threshold: float = 0.2
    norm: str = DEFAULT_NORM
    box_cap: int = BOX_CAP
    clamp_negative: bool = False
    tta: Any = None
    method: Any = None
    all_boxes: bool = False
    calibrated: bool = False
    temperature: float | None = None

    def __post_init__(self) -> None:
        check_norm(self.norm)
        topk, threshold = self.topk, self.threshold
        if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
            raise ValueError(f"topk must be an integer of at least 1, got {topk!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
        t = self.temperature
        if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 and np.isfinite(t)):
            raise ValueError(f"temperature must be a positive number, got {t!r}")
        if self.tta is not None and self.method is not None:
            raise ValueError("TTA fuses CAM maps; it does not run with a gradient method")

    def mark(self) -> dict[str, Any]:
        """The keys every prediction carries besides its numbers."""
        return {"calibrated": bool(self.calibrated), **({"clamp_negative": True} if self.clamp_negative else {})}


def iter_localize(net: CamNet, inputs: Iterable[Any], options: LocalizeOptions | None = None, *,
                  batch_size: int = 16, backend: Any = "auto", resize: Resize | None = None,
                  workers: int | None = None, isolate: bool = False, display: bool = False,
                  progress: bool | None = None, total: int | None = None, **fields: Any) -> Iterator[Localized]:
    """Yield a :class:`Localized` per input, in order, one forward pass per batch.

    ``options`` (:class:`LocalizeOptions`) says how scores and maps become predictions; any of
    its fields may also be given by name (``topk=3``, ``tta=TTA((256,), True)``), over
    ``options``. The rest is how the pass runs: ``backend`` is ``"auto"`` (ONNX Runtime on the CPU,
    its graph cached on disk; else PyTorch), ``"torch"`` or ``"onnxruntime"`` (with a map method:
    its forward passes without gradients; :mod:`camloc.methods.engine`);
    ``resize`` the geometry (default :func:`default_resize`; with views, the aspect geometry at
    their scales replaces it); ``workers`` the decode threads; ``isolate`` decodes in worker
    processes (a decoder crash costs its image only); ``display`` keeps the image for figures
    (:attr:`Localized.display`).
    """
    from dataclasses import replace

    from camloc.pipeline.run import Pipeline

    opts = replace(options or LocalizeOptions(), **fields) if fields else options or LocalizeOptions()
    if opts.temperature is None:
        opts = replace(opts, temperature=score_temperature(net, resize or default_resize(net), opts.tta)[0])
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    shown = DISPLAY if display else 0
    if opts.tta is not None:
        from camloc.pipeline.views import run_views

        if resize is not None and resize.mode != "aspect":
            raise ValueError("TTA runs the aspect geometry at its own scales; leave resize unset")
        results = run_views(net, inputs, opts.tta, int(opts.topk), opts.box_cap, opts.clamp_negative, backend,
                            int(batch_size), workers, isolate, progress, shown, total)
    else:
        pipe = Pipeline(net, resize=resize or default_resize(net), backend=backend, method=opts.method,
                        topk=int(opts.topk), batch_size=int(batch_size), workers=workers, display=shown,
                        isolate=isolate, progress=progress, desc=f"localize ({net.name})",
                        clamp_negative=opts.clamp_negative)
        results = pipe.run(inputs, total=total)
    for res in results:
        yield localized(net, res, opts)


def localized(net: CamNet, res: Any, opts: LocalizeOptions) -> Localized:
    """One pipeline :class:`~camloc.pipeline.run.Result` -> its :class:`Localized`: the one
    record builder (schema in DESIGN.md)."""
    if res.error is not None:
        return Localized({"image": res.name, "error": res.error}, index=res.index)
    mark = opts.mark()
    record: dict[str, Any] = {"image": res.name, "width": res.size[0], "height": res.size[1], "model": net.name}
    if opts.tta is not None:
        record["tta"] = opts.tta.describe()
    record["predictions"] = [{**p, **mark} for p in predictions_for(
        net, res.logits, res.classes, res.maps, res.size, opts.threshold, opts.all_boxes, opts.norm, opts.box_cap,
        1.0 if opts.temperature is None else float(opts.temperature))]
    record["error"] = None
    return Localized(record, res.display, res.maps, res.index)


def localize(
    net: CamNet,
    inputs: Iterable[Any],
    topk: int = 5,
    threshold: float = 0.2,
    batch_size: int = 16,
    progress: bool | None = False,
    all_boxes: bool = False,
    method: Any = None,
    norm: str = DEFAULT_NORM,
    backend: Any = "auto",
    resize: Resize | None = None,
    temperature: float | None = None,
) -> list[dict[str, Any]]:
    """Classify and localize images: the records of :func:`iter_localize`.

    Args:
        net: a :class:`CamNet` (e.g. ``camloc.load_model()``).
        inputs: file paths, PIL images or image arrays (``HxW``, ``HxWx1|3|4``, uint8, or floats
            in [0, 1]); a bad one gets an error record, the others go on.
        topk: classes per image, best first, each with its own map and box.
        threshold: the box rule's fraction of the map's maximum (the paper's 0.2).
        batch_size: images per forward pass.
        all_boxes: also list every connected component's box (``"boxes"``), largest first.
        method: a map method instead of CAM (``camloc.methods.get_method("gradcam")``).
        norm: how a signed map is read for its box (:data:`camloc.readings.NORMS`); default
            :data:`DEFAULT_NORM` (``"positive"``), ``"minmax"`` the published evaluation code's.
        backend: ``"auto"`` (default), ``"torch"`` or ``"onnxruntime"`` (CPU; CAM only).
        resize: the geometry (:class:`camloc.pipeline.Resize`); default: the whole image, aspect
            kept (:func:`default_resize`); ``Resize("squash")`` for the net's fixed square input.
        temperature: ``score`` is ``softmax(logits / temperature)``; default: the shipped
            temperature of an embedded net at this geometry (:func:`score_temperature`), else 1
            (the raw softmax). ``logit`` is always raw.

    Returns:
        One record per input, in order (schema in DESIGN.md).

    Examples:
        >>> from camloc.photos import demo_photo_paths
        >>> recs = camloc.localize(camloc.load_model(), demo_photo_paths()[:1], topk=1)   # the cat
        >>> p = recs[0]["predictions"][0]
        >>> p["label"], len(p["box"]), (recs[0]["width"], recs[0]["height"])
        ('Egyptian cat', 4, (451, 300))
    """
    opts = LocalizeOptions(topk=topk, threshold=threshold, norm=norm, method=method, all_boxes=all_boxes,
                           temperature=temperature)
    return [r.record for r in iter_localize(net, inputs, opts, batch_size=batch_size, progress=progress,
                                            backend=backend, resize=resize)]


def score_temperature(net: CamNet, resize: Resize, tta: Any = None) -> tuple[float, str | None]:
    """``(T, views it was fitted for)``: the shipped temperature of an embedded net with its packaged
    weights at these views (:func:`camloc.scores.shipped_temperature`), else ``(1.0, None)``."""
    from camloc.scores import shipped_temperature, views_of

    found = shipped_temperature(net, views_of(resize, tta))
    return found if found is not None else (1.0, None)


def normalized_upsampled(maps: np.ndarray, size: tuple[int, int], norm: str = "minmax") -> np.ndarray:
    """``(k, h, w)`` raw maps -> ``(k, height, width)`` in [0, 1] for figures; ``size=(w, h)``."""
    width, height = size
    return np.stack([normalize_map(upsample(m, (height, width)), norm) for m in maps])


def figure_stem(path: str, used: set[str], max_bytes: int = 200) -> str:
    """A figure file stem for ``path``, unique in ``used``: control characters become ``_`` and the
    stem is cut to ``max_bytes`` of UTF-8, so ``<stem>_<n>_topk.png`` stays under the usual
    255-byte limit on a file name."""
    stem = "".join(c if c.isprintable() else "_" for c in Path(path).stem)
    stem = stem.encode("utf-8")[:max_bytes].decode("utf-8", "ignore") or "image"
    name, n = stem, 2
    while name in used:
        name, n = f"{stem}_{n}", n + 1
    used.add(name)
    return name


class RecordFigures:
    """The figures of localized records in one folder: per record ``<stem>_cam.png`` (the top-1 map
    over the image with its box) and ``<stem>_topk.png`` (the top-k panel), drawn on the display
    image the pipeline kept. Stems stay unique; with ``resume`` the folder's earlier figures keep
    their names."""

    def __init__(self, folder: str | os.PathLike, resume: bool = False) -> None:
        self.folder = folder
        self.used: set[str] = set()
        if resume and os.path.isdir(folder):
            self.used.update(f[: -len("_cam.png")] for f in os.listdir(folder) if f.endswith("_cam.png"))

    def write(self, item: Any, norm: str) -> None:
        """Both figures of one successful item of :func:`iter_localize` (run with ``display=True``)."""
        from camloc.boxes import scale_box
        from camloc.viz import overlay_figure, save_png, topk_figure

        rec, rgb = item.record, item.display
        h, w = rgb.shape[:2]

        def scaled(box):  # the display image is the whole image, resized
            return scale_box(box, (rec["width"], rec["height"]), (w, h))

        stem = figure_stem(rec["image"], self.used)
        maps01 = normalized_upsampled(item.maps, (w, h), norm)
        preds = rec["predictions"]
        top = preds[0]
        save_png(os.path.join(self.folder, f"{stem}_cam.png"),
                 overlay_figure(rgb, maps01[0], scaled(top["box"]), f"{top['label']} {top['score']:.2f}"))
        topk_figure(rgb, maps01, [scaled(p["box"]) for p in preds],
                    [f"{p['rank']}. {p['label'][:22]} ({p['score']:.2f})" for p in preds],
                    os.path.join(self.folder, f"{stem}_topk.png"), title=os.path.basename(rec["image"]))
