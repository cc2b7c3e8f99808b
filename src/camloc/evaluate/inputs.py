"""What the harness reads: this process's samples, each with its scores and its true class's raw
map, from the inference pipeline (one forward pass per batch) or from the paper's ten crops."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from camloc.cam import class_maps

from camloc.readings import upsample
from camloc.data.base import Sample, Split
from camloc.pixels.decode import load_image
from camloc.errors import ImageError
from camloc.evaluate.options import EvalOptions
from camloc.extract import extract
from camloc.models.net import CamNet


@dataclass
class Scored:
    """One read sample: its scores ``(C,)``, the top-k classes, the raw map of its true class,
    the maps of ``map_classes`` (multibox only), and whether the maps are already at image
    size (ten-crop) or at feature resolution."""

    sample: Sample
    size: tuple[int, int]
    logits: np.ndarray
    top: np.ndarray
    true_map: np.ndarray
    top_maps: np.ndarray | None = None
    map_classes: np.ndarray | None = None
    full_size: bool = False
    image: Image.Image | None = None


def pipeline_scored(net: CamNet, split: Split, opt: EvalOptions, method: Any, k: int, rank: int, world: int,
                     skipped: list[str]) -> Iterator[Scored]:
    """This process's samples through the pipeline: one forward pass per batch, the true
    class's map asked for by every job (and the top-3 maps for the multibox heuristic)."""
    from camloc.pipeline.run import Job, Pipeline, shard

    pipe = Pipeline(net, resize=opt.resize, backend=opt.backend, method=method, topk=3 if opt.multibox else 0,
                    batch_size=max(1, opt.batch_size), workers=opt.workers, isolate=opt.isolate,
                    progress=False if rank else opt.progress, desc="evaluate", clamp_negative=opt.clamp_negative)
    jobs = (Job(s.path, i, s.path, tag=s, classes=(s.label,)) for i, s in enumerate(split.samples))
    for res in pipe.run(shard(jobs, rank, world), total=len(range(rank, len(split.samples), world))):
        if res.error is not None:
            skipped.append(res.error)
            continue
        top = torch.from_numpy(res.logits).topk(min(k, len(res.logits))).indices.numpy()
        yield Scored(res.job.tag, res.size, res.logits, top, res.extra_maps[0],
                      res.maps if opt.multibox else None, res.classes)


def ten_crop_scored(net: CamNet, split: Split, opt: EvalOptions, k: int, rank: int, world: int,
                     skipped: list[str]) -> Iterator[Scored]:
    """This process's samples with the paper's ten-crop maps (:func:`ten_crop`), one image at a time."""
    mine = split.samples[rank::world]
    bar = tqdm(total=len(mine), desc="evaluate (ten-crop)", unit="img", disable=True if rank else opt.progress)
    try:
        for s in mine:
            bar.update(1)
            try:
                image = load_image(s.path)
            except ImageError as err:
                skipped.append(str(err))
                continue
            scores, classes, maps = ten_crop(net, image, k, extra=torch.tensor([s.label]))
            top = classes[:k].numpy()
            yield Scored(s, image.size, scores.numpy(), top, maps[-1], maps[:k], top, True, image)
    finally:
        bar.close()


def ten_crop(net: CamNet, image: Image.Image, classes_k: int, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The paper's ten-crop maps for one image.

    The image is resized to ``S x S`` with ``S = round(256 / 224 * size)`` (256 for the usual
    224 input); the four corner crops, the centre crop and their mirrors go through the net in
    one forward pass. Scores are the mean softmax over the crops; each crop's map (for the best
    ``classes_k`` classes, then the classes in ``extra``) is upsampled to the crop, mirrored back,
    placed where the crop came from, and averaged over the crops that cover each pixel; the
    ``S x S`` result is resized to the image. Returns ``(scores (C,), classes (n,),
    maps (n, H, W))``.
    """
    h, w = net.preprocessing.shape
    sh, sw = round(256 / 224 * h), round(256 / 224 * w)
    big = image.resize((sw, sh), Image.BILINEAR)
    offsets = [(0, 0), (sw - w, 0), (0, sh - h), (sw - w, sh - h), ((sw - w) // 2, (sh - h) // 2)]
    crops = [big.crop((x, y, x + w, y + h)) for x, y in offsets]
    crops += [c.transpose(Image.FLIP_LEFT_RIGHT) for c in crops]
    x = net.preprocess(crops).to(net.device)
    net.module.eval()
    with torch.inference_mode():
        features, logits = extract(net, x)
        scores = logits.softmax(dim=1).mean(dim=0)
        classes = scores.topk(min(classes_k, scores.shape[0])).indices
        if extra is not None:
            classes = torch.cat([classes, extra.to(classes.device)])
        maps = class_maps(features, net.classifier.weight, classes).float().cpu().numpy()  # (10, n, h', w')
    total = np.zeros((len(classes), sh, sw), np.float64)
    cover = np.zeros((sh, sw), np.float64)
    for i, (ox, oy) in enumerate(offsets * 2):
        for j in range(len(classes)):
            m = upsample(maps[i, j], (h, w))
            total[j, oy : oy + h, ox : ox + w] += m[:, ::-1] if i >= 5 else m
        cover[oy : oy + h, ox : ox + w] += 1
    avg = total / np.maximum(cover, 1)
    W, H = image.size
    out = np.stack([upsample(a.astype(np.float32), (H, W)) for a in avg])
    return scores.cpu(), classes.cpu(), out
