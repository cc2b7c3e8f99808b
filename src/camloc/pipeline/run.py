"""The one inference loop: inputs -> decode workers -> shape buckets -> one backend call per batch
-> (logits, top-k classes, maps) per input, in input order.

Every command that reads images through a net (localize, evaluate, probe features and maps,
units, finegrained, serve, discover) is a consumer of :meth:`Pipeline.run`. Decoding runs in a
pool of threads (Pillow and OpenCV release the GIL), or of processes with ``isolate``
(:mod:`~camloc.pipeline.workers`), one chunk ahead of the forward pass, so decoding and the
network overlap; memory holds three chunks (windows), whatever the number of inputs.

An input that cannot be decoded, or whose scores are not finite, gives a :class:`Result` with a
one-line ``error`` and the others go on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from camloc.cam import class_maps, map_weight
from camloc.errors import ImageError, one_line
from camloc.models.net import CamNet
from camloc.pipeline.backends import as_input, make_backend
from camloc.pixels.decode import Decoded, decode, name_of
from camloc.pixels.geometry import Resize
from camloc.pipeline.workers import ProcessDecoders, ThreadDecoders, default_workers


@dataclass
class Job:
    """One input: its ``source`` (path, PIL image or array), its position in the whole input
    stream, the name its record carries, anything the consumer wants back (``tag``), and the
    classes whose maps are wanted besides the top-k (e.g. the ground-truth class)."""

    source: Any
    index: int
    name: str
    tag: Any = None
    classes: tuple[int, ...] = ()


@dataclass
class Result:
    """What the pipeline gives for one :class:`Job`.

    Attributes:
        size: ``(width, height)`` of the original image.
        input_size: ``(width, height)`` the network saw.
        logits: ``(C,)`` class scores; classes: ``(k,)`` the top-k, best first.
        maps: ``(k, h, w)`` raw maps of the top-k classes (float32, feature resolution).
        extra_maps: ``(e, h, w)`` raw maps of ``job.classes``.
        pooled: ``(K,)`` globally pooled features (with ``keep="pooled"``).
        features: ``(K, h, w)`` features (with ``keep="features"``).
        display: the whole image for figures (with ``display > 0``).
    """

    job: Job
    error: str | None = None
    size: tuple[int, int] | None = None
    input_size: tuple[int, int] | None = None
    logits: np.ndarray | None = None
    classes: np.ndarray | None = None
    maps: np.ndarray | None = None
    extra_maps: np.ndarray | None = None
    pooled: np.ndarray | None = None
    features: np.ndarray | None = None
    display: np.ndarray | None = None

    @property
    def index(self) -> int:
        return self.job.index

    @property
    def name(self) -> str:
        return self.job.name


def as_jobs(inputs: Iterable[Any], start: int = 0) -> Iterator[Job]:
    """Sources (or ready :class:`Job` objects) -> jobs numbered in stream order."""
    for i, item in enumerate(inputs, start=start):
        yield item if isinstance(item, Job) else Job(item, i, name_of(item, i))


def shard(jobs: Iterable[Job], rank: int = 0, world: int = 1) -> Iterator[Job]:
    """This process's share of the stream: every ``world``-th job from ``rank`` (by index)."""
    if world <= 1:
        yield from jobs
        return
    for job in jobs:
        if job.index % world == rank:
            yield job


def decode_or_error(source: Any, resize: Resize, net_shape: tuple[int, int], display: int, name: str,
                    draft: bool) -> Decoded | str:
    """:func:`~camloc.pixels.decode.decode`, or the one-line reason it failed (what a decode
    worker returns; module-level so a worker process can run it)."""
    try:
        return decode(source, resize, net_shape, display, name, draft)
    except ImageError as err:
        return str(err)
    except Exception as err:  # a decoder bug must cost one image, not the run
        return f"{name}: cannot decode ({type(err).__name__}: {one_line(err, 200)})"


def _crashed(source: Any, resize: Resize, net_shape: tuple[int, int], display: int, name: str, draft: bool) -> str:
    return f"{name}: the decoder crashed on this file (its worker process died twice); skipped"


@dataclass
class Pipeline:
    """One configured inference path.

    Args:
        net: the classifier (:func:`camloc.load_model`).
        resize: how images are fitted to the net (:class:`~camloc.pixels.geometry.Resize`).
        backend: ``"auto"``, ``"torch"`` or ``"onnxruntime"`` (see
            :func:`~camloc.pipeline.backends.make_backend`), or a ready backend object.
        method: a gradient map method (:mod:`camloc.methods`) instead of CAM, or ``None``.
        topk: classes mapped per image, best first (0: none, only ``job.classes``).
        batch_size: images per forward pass (images of one shape are batched together).
        workers: decode workers (``None``: :func:`~camloc.pipeline.workers.default_workers`; 0:
            decode inline).
        keep: ``None``, ``"pooled"`` or ``"features"``: also return the pooled features or the
            feature maps.
        display: keep the whole image at this longer side for figures (0: no).
        draft: allow reduced-scale JPEG decoding.
        isolate: decode in worker processes rather than threads, so that a decoder crash
            costs only its image (:mod:`~camloc.pipeline.workers`); slower to start.
        decoder: the decode function (:func:`decode_or_error`; a module-level function).
        progress: show a progress bar (``None``: only on a terminal).
        desc: the bar's label.
        clamp_negative: CAM maps from the classifier's positive weights only
            (:func:`camloc.cam.positive_weights`); the scores are unchanged.
        window: inputs decoded and bucketed by shape together (0: :meth:`default_window`); batches
            form within a window, and records leave in input order.
    """

    net: CamNet
    resize: Resize = field(default_factory=Resize)
    backend: Any = "auto"
    method: Any = None
    topk: int = 5
    batch_size: int = 16
    workers: int | None = None
    keep: str | None = None
    display: int = 0
    draft: bool = True
    isolate: bool = False
    decoder: Callable[..., Decoded | str] = None  # type: ignore[assignment]
    progress: bool | None = None
    desc: str = ""
    clamp_negative: bool = False
    window: int = 0

    def __post_init__(self) -> None:
        if self.clamp_negative and self.method is not None:
            raise ValueError("clamp_negative reads CAM's weights; a gradient method makes its own maps")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.topk, int) or self.topk < 0:
            raise ValueError(f"topk must be a non-negative integer, got {self.topk!r}")
        if self.keep not in (None, "pooled", "features"):
            raise ValueError(f"keep must be None, 'pooled' or 'features', got {self.keep!r}")
        if isinstance(self.backend, str):
            self.backend = make_backend(self.net, self.backend)
        if self.decoder is None:
            self.decoder = decode_or_error

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    def run(self, inputs: Iterable[Any], total: int | None = None) -> Iterator[Result]:
        """Yield one :class:`Result` per input, in input order."""
        jobs = as_jobs(inputs)
        chunk = self.window if self.window > 0 else self.default_window()
        workers = default_workers() if self.workers is None else max(0, int(self.workers))
        bar = tqdm(total=total, unit="img", desc=self.desc or f"{self.net.name}",
                   disable=(not self.progress) if self.progress is not None else None)
        if self.isolate and workers:
            decoders: Any = ProcessDecoders(self.decoder, workers, _crashed)
        else:
            decoders = ThreadDecoders(self.decoder, workers)
        pending: deque[list[tuple[Job, tuple, Any]]] = deque()

        def submit(size: int = chunk) -> None:
            part = list(islice(jobs, size))
            if part:
                args = [self._args(j) for j in part]
                pending.append([(j, a, decoders.submit(*a)) for j, a in zip(part, args)])

        try:
            submit(min(chunk, max(32, 4 * self.batch_size)))  # a small first window: the net starts early
            submit()
            while pending:
                part = pending.popleft()
                submit()
                decoded = [(j, decoders.result(h, *a)) for j, a, h in part]
                for res in self._infer(decoded):
                    yield res
                bar.update(len(part))
        finally:
            bar.close()
            decoders.close()

    def default_window(self) -> int:
        """16 batches of inputs when only the network's pixels are held (a few MB per batch at
        224-288; on the 500 shared photos at aspect 224, 21 shapes, the mean batch goes from 5.2
        images at 4 batches to 9.3), 4 when display images or feature maps are kept (they weigh
        more); memory holds three windows."""
        light = not self.display and self.keep is None
        return max(32, (16 if light else 4) * self.batch_size)

    # ------------------------------------------------------------------ stages
    def _args(self, job: Job) -> tuple:
        return (job.source, self.resize, tuple(self.net.preprocessing.shape), self.display, job.name, self.draft)

    def _infer(self, decoded: list[tuple[Job, Decoded | str]]) -> list[Result]:
        results: dict[int, Result] = {}
        buckets: dict[tuple[int, ...], list[tuple[Job, Decoded]]] = {}
        for job, d in decoded:
            if isinstance(d, str):
                results[job.index] = Result(job, error=d)
            else:
                buckets.setdefault(d.pixels.shape, []).append((job, d))
        for members in buckets.values():
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                for res in self._forward(batch):
                    results[res.job.index] = res
        return [results[job.index] for job, _ in decoded]

    def _weight(self) -> np.ndarray:
        """The classifier's ``(C, K)`` weight as float32, read once per run."""
        if getattr(self, "_w", None) is None:
            self._w = map_weight(self.net, self.clamp_negative)
        return self._w

    def _forward(self, batch: list[tuple[Job, Decoded]]) -> list[Result]:
        pixels = np.stack([d.pixels for _, d in batch])
        engine = "onnxruntime" if self.backend_name == "onnxruntime" else "torch"
        if self.method is None or engine == "onnxruntime":
            features, logits = self.backend(pixels)
        if self.method is not None:
            x = as_input(self.net, pixels)
            if engine == "torch":
                features, logits = gradient_forward(self.net, x)
        logits_np = logits.float().cpu().numpy()
        k = min(self.topk, logits_np.shape[1])
        top_np = top_classes(logits_np, k)
        extra = _extra_classes(batch, logits_np.shape[1])
        wanted = np.concatenate([top_np, extra], axis=1) if extra is not None else top_np
        if wanted.shape[1] == 0:
            maps_np = np.zeros((len(batch), 0, 1, 1), np.float32)
        elif self.method is None:
            features_np = features.float().cpu().numpy()
            maps_np = class_maps(features_np, self._weight(), wanted)
        else:  # the method reads the forward just run where it can (the closed forms need no other), and
            # runs its other forward passes without gradients on the backend's engine
            from camloc.methods.base import share_forward
            from camloc.methods.engine import forward_engine
            from camloc.methods.shared import shared_passes

            with shared_passes(x), forward_engine(engine):
                share_forward(self.net, x, logits, features)
                maps = self.method(self.net, x, torch.from_numpy(wanted).to(x.device))
            maps_np = maps.detach().float().cpu().numpy()
        pooled = kept = None
        if self.keep == "pooled":
            f = features.float().cpu().numpy()
            pooled = f.max(axis=(2, 3)) if self.net.head.pooling == "max" else f.mean(axis=(2, 3))
        elif self.keep == "features":
            kept = features.float().cpu().numpy()
        out = []
        for j, (job, d) in enumerate(batch):
            if not np.isfinite(logits_np[j]).all():
                out.append(Result(job, error=f"{job.name}: the model's scores are not finite (NaN or inf); "
                                             "check the weights and the input", size=d.size))
                continue
            out.append(Result(
                job, size=d.size, input_size=(d.pixels.shape[1], d.pixels.shape[0]), logits=logits_np[j],
                classes=top_np[j], maps=maps_np[j, :k], extra_maps=maps_np[j, k:] if extra is not None else None,
                pooled=None if pooled is None else pooled[j], features=None if kept is None else kept[j],
                display=d.display,
            ))
        return out


def top_classes(logits: np.ndarray, k: int) -> np.ndarray:
    """``(B, k)`` indices of the ``k`` largest scores per row, best first (ties: lower index)."""
    if k == 0:
        return np.zeros((logits.shape[0], 0), np.int64)
    order = np.argsort(-logits, axis=1, kind="stable")
    return order[:, :k].astype(np.int64)


def gradient_forward(net: CamNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and features for a gradient method's batch (no maps: the method makes its own, reading
    this forward where it can). Without a graph, but not in inference mode: the methods compute
    with these tensors next to the net's parameters."""
    from camloc.extract import extract
    from camloc.models.net import evaluating

    with torch.no_grad(), evaluating(net.module):
        if getattr(net, "cam_refused", False):
            from camloc.methods.base import logits_of

            return torch.zeros(0), logits_of(net.module(x))
        return extract(net, x)


def _extra_classes(batch: list[tuple[Job, Decoded]], num_classes: int) -> np.ndarray | None:
    wanted = [job.classes for job, _ in batch]
    n = max((len(c) for c in wanted), default=0)
    if n == 0:
        return None
    if any(len(c) != n for c in wanted):
        raise ValueError("every job of a batch must ask for the same number of extra classes")
    out = np.array([list(c) for c in wanted], dtype=np.int64)
    bad = out[(out < 0) | (out >= num_classes)]
    if bad.size:
        raise ValueError(f"class index {int(bad[0])} is out of range for a model with {num_classes} classes")
    return out
