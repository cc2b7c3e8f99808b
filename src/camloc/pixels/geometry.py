"""How an image is fitted to the network: the resize modes. (The way back, a box found on a smaller
grid to original pixels, is :func:`camloc.boxes.box_to_original`.)

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

from dataclasses import dataclass
from typing import Literal

Mode = Literal["aspect", "squash", "crop"]
MODES: tuple[str, ...] = ("aspect", "squash", "crop")


@dataclass(frozen=True)
class Resize:
    """A resize mode with its size ``S`` (shorter side for ``aspect``/``crop``; ignored by
    ``squash``, which uses the net's own input size).

    Attributes:
        mode: ``"aspect"``, ``"squash"`` or ``"crop"``.
        size: ``S`` in pixels.
        stride: the network's total stride; ``aspect`` sides are multiples of it.
        max_ratio: the largest longer/shorter side ratio kept by ``aspect``.
    """

    mode: Mode = "aspect"
    size: int = 256
    stride: int = 32
    max_ratio: float = 3.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown resize mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if not isinstance(self.size, int) or self.size < self.stride:
            raise ValueError(f"resize size must be an integer of at least {self.stride}, got {self.size!r}")
        if not self.max_ratio >= 1:
            raise ValueError(f"max_ratio must be at least 1, got {self.max_ratio}")

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
        return f"{self.mode} {self.size}"


def scaled_short_side(size: tuple[int, int], short: int) -> tuple[int, int]:
    """``(width, height)`` with the shorter side ``short`` and the aspect ratio kept."""
    width, height = size
    if width <= height:
        return short, max(1, round(height * short / width))
    return max(1, round(width * short / height)), short


def _round_to(value: float, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def parse_resize(text: str, stride: int = 32) -> Resize:
    """``"aspect:256"``, ``"aspect"``, ``"squash"`` or ``"crop:224"`` -> :class:`Resize` (the CLI's
    ``--resize``); one-line ``ValueError`` otherwise."""
    mode, _, size = str(text).partition(":")
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(f"--resize must be aspect[:S], squash or crop[:S], got {text!r}")
    if not size:
        return Resize(mode, 256 if mode == "aspect" else 224, stride)  # type: ignore[arg-type]
    try:
        s = int(size)
    except ValueError:
        raise ValueError(f"--resize size must be an integer, got {size!r}") from None
    return Resize(mode, s, stride)  # type: ignore[arg-type]
