"""Images -> top-k classes, maps and boxes: the main job, one forward pass per batch.

Each image gives one record in the results schema of DESIGN.md; an image that cannot be
processed gives ``{"image": ..., "error": "<one line>"}`` and the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from camloc.boxes import boxes_from_checked_map
from camloc.cam import check_norm, map_status, normalize_map, upsample
from camloc.data.images import ImageError, load_image
from camloc.extract import cam
from camloc.models.net import CamNet

ImageInput = str | os.PathLike | Image.Image | np.ndarray
BACKENDS = ("torch", "onnxruntime")  # what runs the CAM forward pass


@dataclass
class Localized:
    """One image's outcome: its record, and (when it succeeded) the image and its top-k maps.

    ``maps`` are the raw CAMs at feature resolution, ``(k, h, w)``, in the record's rank order.
    """

    record: dict[str, Any]
    image: Image.Image | None = None
    maps: np.ndarray | None = None


def _name(item: ImageInput, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return f"<image {index}>"


def _open(item: ImageInput, index: int) -> Image.Image:
    if isinstance(item, (str, os.PathLike)):
        return load_image(item)
    if isinstance(item, np.ndarray):
        if item.ndim not in (2, 3) or item.size == 0:
            raise ImageError(f"{_name(item, index)}: array of shape {item.shape} is not an image")
        item = Image.fromarray(item.astype(np.uint8) if item.dtype != np.uint8 else item)
    if not isinstance(item, Image.Image):
        raise ImageError(f"{_name(item, index)}: {type(item).__name__} is not an image")
    from camloc.data.images import to_rgb

    return to_rgb(item)


def predictions_for(
    net: CamNet,
    logits: np.ndarray,
    classes: np.ndarray,
    maps: np.ndarray,
    size: tuple[int, int],
    threshold: float,
    all_boxes: bool = False,
    norm: str = "minmax",
) -> list[dict[str, Any]]:
    """The record's ``predictions`` for one image.

    Args:
        logits: ``(C,)`` class scores; classes: ``(k,)``; maps: ``(k, h, w)`` raw CAMs;
        size: ``(width, height)`` of the original image; norm: how the map is read for the
        box (:data:`camloc.cam.NORMS`).
    """
    probs = _softmax(logits)
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
        problem = map_status(m, norm)
        if problem is None:
            # The raw map passed the check, so its upsampling is finite: skip the per-pixel check.
            boxes = boxes_from_checked_map(upsample(m, (height, width)), threshold, largest_only=not all_boxes,
                                           norm=norm)
            if not boxes:  # the map varies, but not at the image's (tiny) resolution
                boxes = [[0, 0, width - 1, height - 1]]
                pred["warning"] = "map is flat at image resolution: box is the whole image"
            pred["box"] = boxes[0]
            if all_boxes:
                pred["boxes"] = boxes
        else:
            pred["warning"] = f"{problem}: no box"
        preds.append(pred)
    return preds


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


def iter_localize(
    net: CamNet,
    inputs: Iterable[ImageInput],
    topk: int = 5,
    threshold: float = 0.2,
    batch_size: int = 16,
    progress: bool | None = None,
    all_boxes: bool = False,
    total: int | None = None,
    method=None,
    norm: str = "minmax",
    backend: str = "torch",
) -> Iterator[Localized]:
    """Yield a :class:`Localized` per input, in order, one forward pass per batch.

    ``method`` (a :class:`camloc.methods.MapMethod`, e.g. Grad-CAM) replaces CAM for the maps;
    the default ``None`` is CAM from the single forward pass. ``norm`` is how maps are read for
    boxes (:data:`camloc.cam.NORMS`). ``backend="onnxruntime"`` runs the CAM graph with ONNX
    Runtime on the CPU (:func:`camloc.export.onnx_session`; several times faster than eager
    PyTorch there), checked against camloc's own maps before the first image.
    """
    check_norm(norm)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        if method is not None:
            raise ValueError("the onnxruntime backend runs CAM only; use the torch backend for gradient methods")
        from camloc.export import onnx_session

        method = _OnnxCam(onnx_session(net, max(1, min(int(topk), net.num_classes))))
    items = inputs if isinstance(inputs, Sequence) else list(inputs)
    total = len(items) if total is None else total
    bar = tqdm(total=total, unit="img", disable=(not progress) if progress is not None else None,
               desc=f"localize ({net.name})")
    batch: list[tuple[int, ImageInput]] = []
    try:
        for i, item in enumerate(items):
            batch.append((i, item))
            if len(batch) == batch_size:
                yield from _run_batch(net, batch, topk, threshold, all_boxes, method, norm)
                bar.update(len(batch))
                batch = []
        if batch:
            yield from _run_batch(net, batch, topk, threshold, all_boxes, method, norm)
            bar.update(len(batch))
    finally:
        bar.close()


class _OnnxCam:
    """CAM by an ONNX Runtime session of the CAM graph: ``(logits, classes, maps)`` as arrays."""

    def __init__(self, session) -> None:
        self.session = session

    def run(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits, classes, maps = self.session.run(None, {"images": x.detach().cpu().numpy().astype(np.float32)})
        return logits, classes, maps


def _scores_and_maps(net: CamNet, x: torch.Tensor, topk: int, method) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logits (B, C), classes (B, k), maps (B, k, h, w))``: CAM in one forward pass (PyTorch or
    ONNX Runtime), or a gradient method (one forward for the classes, then its own passes)."""
    if isinstance(method, _OnnxCam):
        return method.run(x)
    if method is None:
        out = cam(net, x, topk=topk)
        logits, classes, maps = out.logits, out.classes, out.maps
    else:
        from camloc.methods.base import logits_of

        with torch.no_grad():
            logits = logits_of(net.module(x))
        classes = logits.topk(max(1, min(topk, logits.shape[1])), dim=1).indices
        maps = method(net, x, classes).detach()
    return logits.float().cpu().numpy(), classes.cpu().numpy(), maps.float().cpu().numpy()


def _run_batch(net: CamNet, batch, topk, threshold, all_boxes, method=None, norm="minmax") -> Iterator[Localized]:
    opened: list[tuple[int, str, Image.Image]] = []
    outcome: dict[int, Localized] = {}
    for i, item in batch:
        name = _name(item, i)
        try:
            opened.append((i, name, _open(item, i)))
        except ImageError as err:
            outcome[i] = Localized({"image": name, "error": str(err)})
    if opened:
        x = net.preprocess([im for _, _, im in opened]).to(net.device)
        logits, classes, maps = _scores_and_maps(net, x, topk, method)
        for j, (i, name, im) in enumerate(opened):
            record = {
                "image": name,
                "width": im.width,
                "height": im.height,
                "model": net.name,
                "predictions": predictions_for(net, logits[j], classes[j], maps[j], im.size, threshold, all_boxes,
                                               norm),
                "error": None,
            }
            outcome[i] = Localized(record, im, maps[j])
    for i, _ in batch:
        yield outcome[i]


def localize(
    net: CamNet,
    inputs: Iterable[ImageInput],
    topk: int = 5,
    threshold: float = 0.2,
    batch_size: int = 16,
    progress: bool | None = False,
    all_boxes: bool = False,
    method=None,
    norm: str = "minmax",
    backend: str = "torch",
) -> list[dict[str, Any]]:
    """Classify and localize images: the records of :func:`iter_localize`.

    Args:
        net: a :class:`CamNet` (e.g. ``camloc.load_model()``).
        inputs: file paths, PIL images or ``HxWx3`` uint8 arrays.
        topk: classes per image, best first, each with its own map and box.
        threshold: the box rule's fraction of the map's maximum (the paper's 0.2).
        batch_size: images per forward pass.
        all_boxes: also list every connected component's box (``"boxes"``), largest first.
        method: a map method instead of CAM (``camloc.methods.get_method("gradcam")``).
        norm: ``"minmax"`` (default) or ``"positive"``: how a signed map is read for its box
            (:data:`camloc.cam.NORMS`).
        backend: ``"torch"`` (default) or ``"onnxruntime"`` (CPU; CAM only).

    Returns:
        One record per input, in order (schema in DESIGN.md).

    Example:
        >>> recs = camloc.localize(camloc.load_model(), ["chelsea.png"], topk=1)
        >>> recs[0]["predictions"][0]["label"], recs[0]["predictions"][0]["box"]
        ('Egyptian cat', [...])
    """
    return [r.record for r in iter_localize(net, inputs, topk, threshold, batch_size, progress, all_boxes,
                                            method=method, norm=norm, backend=backend)]


def normalized_upsampled(maps: np.ndarray, size: tuple[int, int], norm: str = "minmax") -> np.ndarray:
    """``(k, h, w)`` raw maps -> ``(k, height, width)`` in [0, 1] for figures; ``size=(w, h)``."""
    width, height = size
    return np.stack([normalize_map(upsample(m, (height, width)), norm) for m in maps])
