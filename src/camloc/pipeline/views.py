"""The views stage of the pipeline: test-time augmentation of CAM maps (horizontal flip and
several scales), fused on the image, with the fused scores' top-k.

Each *view* is the aspect geometry at shorter side ``S``
(:class:`~camloc.pixels.geometry.Resize`), on the image or on its mirror, whose features come
back mirrored so they lie on the original image. Each scale is one pass of the inference
pipeline over the same inputs; with flip, each batch and its mirror go through one forward pass
(:class:`Paired`). The scales run side by side, each one chunk ahead, so memory holds a few
chunks whatever the number of inputs.

Fusion: the scores are the mean of the views' logits (for a GAP head, the score of the mean
map); each class's map is each view's CAM, bilinearly upsampled to one common grid (the image,
or the image scaled down to a longer side of ``cap``), averaged over the views. One view at
grid resolution reproduces the plain pipeline's map exactly. :func:`run_views` gives one
:class:`~camloc.pipeline.run.Result` per input, like :meth:`Pipeline.run
<camloc.pipeline.run.Pipeline.run>`: its consumers do not tell the two apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import tee
from typing import Any

import cv2
import numpy as np

from camloc.cam import class_maps, map_weight
from camloc.models.net import CamNet
from camloc.pixels.geometry import Resize, check_side, parse_side


@dataclass(frozen=True)
class TTA:
    """The views: every scale in ``scales`` (aspect geometry, shorter side ``S``), each also
    mirrored when ``flip``."""

    scales: tuple[int, ...] = (256,)
    flip: bool = False

    def __post_init__(self) -> None:
        if not self.scales:
            raise ValueError("TTA needs at least one scale")
        for s in self.scales:
            check_side(s, "TTA scale")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError(f"TTA scales repeat: {list(self.scales)}")

    def views(self) -> list[tuple[int, bool]]:
        """``(scale, mirrored)`` of every view, the unmirrored views first."""
        return [(s, False) for s in self.scales] + ([(s, True) for s in self.scales] if self.flip else [])

    def describe(self) -> str:
        """``"flip,scales=256,320"`` (what :func:`parse_tta` reads)."""
        return ("flip," if self.flip else "") + "scales=" + ",".join(str(s) for s in self.scales)


def parse_tta(text: str, default_scale: int = 256) -> TTA | None:
    """``--tta``: ``"flip"``, ``"scales=256,320"``, ``"flip,scales=256,320"`` (``scale=`` too), or
    ``"none"`` (no TTA: ``None``). Without ``scales`` the one scale is ``default_scale``. A
    one-line ``ValueError`` otherwise (an empty spec too: write ``none``; a scale over
    :data:`camloc.pixels.geometry.MAX_SIDE`)."""
    t = str(text).strip().lower()
    if t in ("none", "off"):
        return None
    if not t:
        raise ValueError("--tta is empty; give flip, scales=S1,S2,... or none")
    flip, scales, in_scales = False, [], False
    for tok in (x.strip() for x in t.split(",")):
        if tok == "flip":
            flip, in_scales = True, False
            continue
        key, eq, val = tok.partition("=")
        if eq and key in ("scales", "scale"):
            in_scales, tok = True, val
        elif eq or not in_scales:
            raise ValueError(f"--tta: unknown item {tok!r} in {text!r}; expected flip and/or scales=S1,S2,...")
        try:
            scales.append(parse_side(tok, "--tta scale"))
        except ValueError as err:
            raise ValueError(f"{err} (in {text!r})") from None
    return TTA(tuple(scales) or (default_scale,), flip)


def iter_views(net: CamNet, inputs: Iterable[Any], tta: TTA, backend: Any = "auto", batch_size: int = 16,
               workers: int | None = None, isolate: bool = False, progress: bool | None = None,
               display: int = 0, total: int | None = None) -> Iterator[list[Any]]:
    """One list of :class:`~camloc.pipeline.run.Result` per input (one per view of
    :meth:`TTA.views`, in that order), in input order. Every result keeps its features
    (``keep="features"``, on the original image's orientation); the first view keeps the display
    image when ``display > 0``. One pipeline per scale: each image is decoded once per scale, and
    with ``flip`` its mirror goes through the same forward pass (:class:`Paired`)."""
    from dataclasses import replace

    from camloc.pipeline.backends import make_backend
    from camloc.pipeline.run import Pipeline, as_jobs

    shared = make_backend(net, backend) if isinstance(backend, str) else backend
    engine = Paired(shared) if tta.flip else shared
    streams = tee(as_jobs(inputs), len(tta.scales))
    runs = []
    for i, (scale, stream) in enumerate(zip(tta.scales, streams)):
        pipe = Pipeline(net, resize=Resize("aspect", scale), backend=engine, topk=0, batch_size=batch_size,
                        workers=workers, keep="features", display=display if i == 0 else 0, isolate=isolate,
                        progress=progress if i == 0 else False, desc=f"localize ({net.name}, TTA)")
        runs.append(pipe.run(stream, total=total))
    for per_scale in zip(*runs):
        if not tta.flip:
            yield list(per_scale)
            continue
        plain, mirrored = [], []
        for r in per_scale:
            if r.error is not None:
                plain.append(r)
                mirrored.append(r)
                continue
            k, c = r.features.shape[0] // 2, r.logits.shape[0] // 2
            plain.append(replace(r, features=r.features[:k], logits=r.logits[:c]))
            mirrored.append(replace(r, features=r.features[k:], logits=r.logits[c:], display=None))
        yield plain + mirrored


def run_views(net: CamNet, inputs: Iterable[Any], tta: TTA, topk: int, grid_cap: int = 0,
              clamp_negative: bool = False, backend: Any = "auto", batch_size: int = 16, workers: int | None = None,
              isolate: bool = False, progress: bool | None = None, display: int = 0,
              total: int | None = None) -> Iterator[Any]:
    """One :class:`~camloc.pipeline.run.Result` per input, in input order, with the views of
    ``tta`` fused: ``logits`` the views' mean (:func:`fused_logits`), ``classes`` its top
    ``topk``, ``maps`` their fused maps on the box grid of the image capped at ``grid_cap``
    (:func:`fused_maps`, :func:`camloc.boxes.box_grid`), ``display`` the first view's. An input
    that fails in any view gives that view's error."""
    from camloc.boxes.scale import box_grid
    from camloc.pipeline.run import Result, top_classes

    weight = map_weight(net, clamp_negative)
    for views in iter_views(net, inputs, tta, backend, batch_size, workers, isolate, progress, display, total):
        first = views[0]
        bad = next((v for v in views if v.error is not None), None)
        if bad is not None:
            yield Result(first.job, error=bad.error)
            continue
        logits = fused_logits(views)
        classes = top_classes(logits[None], min(topk, logits.shape[0]))[0]
        maps = fused_maps(views, weight, classes, box_grid(first.size, grid_cap))
        yield Result(first.job, size=first.size, input_size=first.input_size, logits=logits, classes=classes,
                     maps=maps, display=first.display)


class Paired:
    """A backend that runs each batch and its mirror image in one forward pass.

    ``pixels (B, H, W, 3)`` -> features ``(B, 2K, h, w)``: the batch's features, then the
    mirror's features mirrored back onto the image, stacked on the channel axis; logits
    ``(B, 2C)``: the batch's, then the mirror's. :func:`iter_views` splits them into two views
    (the pipeline makes no maps from them: ``topk=0``).
    """

    def __init__(self, base: Any) -> None:
        self.base = base
        self.name = getattr(base, "name", type(base).__name__)

    def __call__(self, pixels: Any) -> tuple[Any, Any]:
        import torch

        arr = pixels.cpu().numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
        b = len(arr)
        features, logits = self.base(np.concatenate([arr, arr[:, :, ::-1]]))
        return torch.cat([features[:b], features[b:].flip(-1)], 1), torch.cat([logits[:b], logits[b:]], 1)


def fused_logits(views: list[Any]) -> np.ndarray:
    """The mean of the views' ``(C,)`` logits."""
    return np.mean(np.stack([v.logits for v in views]), axis=0)


def fused_maps(views: list[Any], weight: np.ndarray, classes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``(n, gh, gw)`` maps of ``classes`` on ``grid = (gw, gh)``: each view's CAM (``weight``
    ``(C, K)`` on its features) upsampled bilinearly (half-pixel centers), averaged over views."""
    gw, gh = grid
    classes = np.asarray(classes, dtype=np.int64)
    acc = np.zeros((gh, gw, len(classes)), np.float32)
    for v in views:
        maps = class_maps(v.features[None].astype(np.float32, copy=False), weight, classes[None])[0]  # (n, h, w)
        for start in range(0, len(classes), 256):  # cv2.resize takes at most 512 channels
            part = np.ascontiguousarray(maps[start:start + 256].transpose(1, 2, 0))
            up = part if part.shape[:2] == (gh, gw) else cv2.resize(part, (gw, gh), interpolation=cv2.INTER_LINEAR)
            acc[:, :, start:start + 256] += up.reshape(gh, gw, -1)
    acc /= np.float32(len(views))
    return np.ascontiguousarray(acc.transpose(2, 0, 1))
