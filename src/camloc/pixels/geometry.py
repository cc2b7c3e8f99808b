"""How an image is fitted to the network: the resize modes. (The way back, a box found on a smaller
grid to original pixels, is :func:`camloc.boxes.scale_box`.)

- ``aspect`` (default for localization): the whole image, the shorter side resized to ``S``, the
  longer side keeping the aspect ratio; both sides rounded to the network's stride so the
  fully convolutional forward sees no padding artifacts. Aspect ratios beyond ``max_ratio`` are
  capped (the longer side stops growing), so a panorama does not cost a hundred cells.
- ``squash``: the whole image resized to the network's fixed input size (``Preprocessing.shape``),
  ignoring the aspect ratio (the published evaluation protocol's geometry).
- ``crop``: shorter side to ``round(S * 256 / 224)``, then the central ``S x S`` window: the usual
  classification geometry, kept for reference measurements only (maps would not cover the image).

All modes map the network input onto the whole original image except ``crop``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

Mode = Literal["aspect", "squash", "crop"]
MODES: tuple[str, ...] = ("aspect", "squash", "crop")

#: The largest size ``S`` of a resize option (``--resize aspect:S``, ``crop:S``, TTA and ablation
#: scales): the shorter side of the network input. 2048 is eight times a 256 net's side.
MAX_SIDE = 2048
#: The most pixels of one network input, ``S * S * max_ratio`` for ``aspect`` (2048 x 6144 at the
#: default ratio 3: about 1.5 GB of float32 activations in a Lite0 forward pass). Larger options
#: are refused before any work, with one line.
MAX_PIXELS = MAX_SIDE * MAX_SIDE * 3


def check_side(size: object, what: str = "resize size", least: int = 32) -> int:
    """``size`` as an integer in ``[least, MAX_SIDE]``, else a one-line ``ValueError`` naming ``what``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < least:
        raise ValueError(f"{what} must be an integer of at least {least}, got {size!r}")
    if size > MAX_SIDE:
        raise ValueError(f"{what} {size} is over the maximum side of {MAX_SIDE} pixels")
    return size


@dataclass(frozen=True)
class Resize:
    """A resize mode with its size ``S`` (shorter side for ``aspect``/``crop``; ignored by
    ``squash``, which uses the net's own input size).

    Attributes:
        mode: ``"aspect"``, ``"squash"`` or ``"crop"``.
        size: ``S`` in pixels.
        stride: the network's total stride; ``aspect`` sides are multiples of it.
        max_ratio: the largest longer/shorter side ratio kept by ``aspect``.
        long_step: ``aspect``'s longer side: ``0`` rounds it to the nearest multiple of the
            stride; a multiple ``N`` of the stride takes the largest multiple of ``N`` not above
            the exact side (at least ``S``): fewer input shapes (fuller batches) and fewer pixels,
            the image a little squeezed along its longer side (at most ``N / S`` of it). At
            ``aspect:224``, ``N = 64`` gives the 500 shared photos 12 shapes instead of 21 and 9 %
            fewer pixels, top-1 equal within its noise (BENCHMARKS.md, pipeline).
    """

    mode: Mode = "aspect"
    size: int = 256
    stride: int = 32
    max_ratio: float = 3.0
    long_step: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown resize mode {self.mode!r}; expected one of {', '.join(MODES)}")
        check_side(self.size, "resize size", self.stride)
        if not self.max_ratio >= 1:
            raise ValueError(f"max_ratio must be at least 1, got {self.max_ratio}")
        step = self.long_step
        if isinstance(step, bool) or not isinstance(step, int) or step < 0 or step % self.stride or step > MAX_SIDE:
            raise ValueError(f"long_step must be 0 or a multiple of the stride {self.stride} up to {MAX_SIDE}, "
                             f"got {step!r}")
        if self.mode != "squash" and self.size * self.size * self.max_ratio > MAX_PIXELS:
            raise ValueError(f"resize {self.mode}:{self.size} with aspect ratio up to {self.max_ratio:g} makes inputs "
                             f"over the maximum of {MAX_PIXELS} pixels")

    def input_size(self, size: tuple[int, int], net_shape: tuple[int, int] = (224, 224)) -> tuple[int, int]:
        """The network input ``(width, height)`` for an image of ``size = (width, height)``.

        ``net_shape`` is the net's own ``(height, width)`` (``Preprocessing.shape``), used by
        ``squash``.
        """
        width, height = size
        if self.mode == "squash":
            return int(net_shape[1]), int(net_shape[0])
        if self.mode == "crop":
            return self.size, self.size
        short, long = min(width, height), max(width, height)
        ratio = min(long / max(short, 1), self.max_ratio)
        s = _round_to(self.size, self.stride)
        if self.long_step:
            ln = max(s, int(math.floor(self.size * ratio / self.long_step + 1e-9)) * self.long_step)
        else:
            ln = max(s, _round_to(self.size * ratio, self.stride))
        return (ln, s) if width >= height else (s, ln)

    def crop_box(self, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """For ``crop``: the ``(left, top, right, bottom)`` window of the resized image (whose
        shorter side is ``round(S * 256 / 224)``); ``None`` for the other modes."""
        if self.mode != "crop":
            return None
        scaled = scaled_short_side(size, round(self.size * 256 / 224))
        left = (scaled[0] - self.size) // 2
        top = (scaled[1] - self.size) // 2
        return left, top, left + self.size, top + self.size

    def describe(self) -> str:
        if self.mode == "squash":
            return "squash to the net's input size"
        step = f" (longer side down to a multiple of {self.long_step})" if self.mode == "aspect" and self.long_step else ""
        return f"{self.mode} {self.size}{step}"


def scaled_short_side(size: tuple[int, int], short: int) -> tuple[int, int]:
    """``(width, height)`` with the shorter side ``short`` and the aspect ratio kept."""
    width, height = size
    if width <= height:
        return short, max(1, round(height * short / width))
    return max(1, round(width * short / height)), short


def side_for(shape: tuple[int, int], stride: int = 32) -> int:
    """A net's own aspect side: the shorter side of its input ``shape`` rounded to ``stride``
    (what ``--resize aspect`` without a size means)."""
    return max(stride, int(round(min(shape) / stride)) * stride)


def _round_to(value: float, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def parse_resize(text: str, stride: int = 32, default_side: int | None = None) -> Resize:
    """``"aspect:256"``, ``"aspect"``, ``"aspect:224:64"`` (the longer side down to a multiple of
    64, :attr:`Resize.long_step`), ``"squash"`` or ``"crop:224"`` -> :class:`Resize` (the CLI's
    ``--resize``); one-line ``ValueError`` otherwise (a size over :data:`MAX_SIDE` too). ``aspect``
    without a size is ``default_side``: the net's own (:func:`camloc.localize.default_resize`),
    which the commands pass once the net is loaded; 256 when not given (option checks)."""
    mode, _, rest = str(text).partition(":")
    size, _, step = rest.partition(":")
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(f"--resize must be aspect[:S], squash or crop[:S], got {text!r}")
    if step and mode != "aspect":
        raise ValueError(f"--resize {text!r}: only aspect takes a longer-side step (aspect:S:N)")
    long_step = parse_side(step, "--resize longer-side step") if step else 0
    if size:
        side = parse_side(size, "--resize size")
    else:
        side = (default_side or 256) if mode == "aspect" else 224
    return Resize(mode, side, stride, long_step=long_step)  # type: ignore[arg-type]


def parse_side(text: str, what: str) -> int:
    """An option's integer size (ASCII digits, an optional sign); the caller checks its range
    (:func:`check_side`). A one-line ``ValueError`` naming ``what`` when it is not an integer or
    has more than 9 digits."""
    t = str(text).strip()
    if not re.fullmatch(r"[+-]?[0-9]+", t):
        raise ValueError(f"{what} must be an integer, got {text!r}")
    if len(t.lstrip("+-")) > 9:
        shown = t if len(t) <= 14 else t[:12] + "..."
        raise ValueError(f"{what} {shown} is out of range (at most {MAX_SIDE} pixels)")
    return int(t)
