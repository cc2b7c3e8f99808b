"""Maps over images, composed with OpenCV and Pillow: heat overlays, boxes and their labels, the
localize figures (top-1 overlay, the paper's top-k panel), text bands, PNG files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image

from camloc.boxes.scale import scale_box
from camloc.io import atomic_write_bytes

BOX_COLOR = (0, 255, 0)  # RGB
GT_COLOR = (255, 0, 0)


def heat_overlay(image: np.ndarray, map01: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a ``[0, 1]`` map (any size; resized to the image) as a jet heat map on an RGB image."""
    h, w = image.shape[:2]
    if map01.shape != (h, w):
        map01 = cv2.resize(map01.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.clip(map01 * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(image.astype(np.uint8), 1 - alpha, heat, alpha, 0)


COLORMAPS = ("jet", "turbo", "viridis", "inferno", "magma", "plasma", "hot", "bone", "cividis", "twilight")


def overlay(image: Image.Image | np.ndarray | str | os.PathLike, map: np.ndarray | Any, alpha: float = 0.5,
            colormap: str = "jet", norm: str = "minmax") -> Image.Image:
    """A map blended over an image as a heat map: a new RGB ``PIL.Image`` of the image's size.

    Args:
        image: a ``PIL.Image``, an ``(H, W, 3)`` or ``(H, W)`` uint8 array, or a file path.
        map: a 2-D map of any size (numpy array or tensor, e.g. ``out.maps[0, 0]``), raw or in
            ``[0, 1]``; read with ``norm`` (see :func:`camloc.normalize_map`) and resized
            bilinearly to the image.
        alpha: the heat map's weight, in ``[0, 1]`` (0: the image, 1: the heat map alone).
        colormap: one of :data:`COLORMAPS` (OpenCV's colour maps).
        norm: how the map is read into ``[0, 1]``: ``"minmax"``, ``"positive"``, ...

    Examples:
        >>> import numpy as np
        >>> from PIL import Image
        >>> img = Image.new("RGB", (64, 48), "white")
        >>> m = np.array([[0.0, 0.0], [0.0, 1.0]])          # hot in the lower right
        >>> out = overlay(img, m, alpha=0.6, colormap="jet")
        >>> out.size, out.mode
        ((64, 48), 'RGB')
        >>> np.asarray(out)[47, 63].tolist(), np.asarray(out)[0, 0].tolist()  # dark red vs. dark blue
        ([179, 102, 102], [102, 102, 179])
        >>> overlay(img, m, alpha=0.0) == img
        True
    """
    from camloc.readings import normalize_map, upsample

    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"overlay: alpha must be in [0, 1], got {alpha}")
    if colormap not in COLORMAPS:
        raise ValueError(f"overlay: unknown colormap {colormap!r}; expected one of {', '.join(COLORMAPS)}")
    if isinstance(image, (str, os.PathLike)):
        from camloc.pixels.decode import load_image

        image = load_image(image)
    rgb = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"overlay: image must be RGB (H, W, 3) or gray (H, W), got shape {rgb.shape}")
    m = map.detach().cpu().numpy() if hasattr(map, "detach") else np.asarray(map)
    m = np.squeeze(m)
    if m.ndim != 2:
        raise ValueError(f"overlay: map must be 2-D, got shape {tuple(np.shape(map))}")
    m01 = upsample(normalize_map(m, norm), rgb.shape[:2])
    code = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    heat = cv2.cvtColor(cv2.applyColorMap(np.clip(m01 * 255 + 0.5, 0, 255).astype(np.uint8), code), cv2.COLOR_BGR2RGB)
    mixed = cv2.addWeighted(np.ascontiguousarray(rgb, dtype=np.uint8), 1 - float(alpha), heat, float(alpha), 0)
    return Image.fromarray(mixed)


def draw_box(image: np.ndarray, box: Sequence[int] | None, color=BOX_COLOR, label: str | None = None) -> np.ndarray:
    """Draw an inclusive-corner box (and a label above it) on a copy of an RGB image."""
    out = np.ascontiguousarray(image.copy())
    if box is None:
        return out
    h, w = out.shape[:2]
    t = max(2, round(min(h, w) / 150))
    x0, y0, x1, y1 = (int(v) for v in box)
    cv2.rectangle(out, (x0, y0), (x1, y1), color, t)
    if label:
        label = printable(label)
        scale = max(0.35, min(h, w) / 600)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, t // 2))
        ty = y0 - 4 if y0 - th - 6 >= 0 else min(h - 1, y0 + th + 6)
        cv2.rectangle(out, (x0, ty - th - 3), (min(w - 1, x0 + tw + 4), ty + base - 1), color, -1)
        cv2.putText(out, label, (x0 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, t // 2), cv2.LINE_AA)
    return out


def overlay_figure(image: np.ndarray, map01: np.ndarray, box: Sequence[int] | None, label: str,
                   gt_boxes: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """The top-1 figure: heat map on the photo, predicted box with its label, ground truth in red."""
    out = draw_box(heat_overlay(image, map01), box, BOX_COLOR, label)
    for gt in gt_boxes:
        out = draw_box(out, gt, GT_COLOR)
    return out


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB array as PNG, atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{os.fspath(path)}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())


def topk_figure(image: np.ndarray, maps01: Sequence[np.ndarray], boxes: Sequence[Sequence[int] | None],
                titles: Sequence[str], path: str | os.PathLike, title: str = "", panel_height: int = 224) -> None:
    """:func:`topk_panel` written atomically as PNG."""
    save_png(path, topk_panel(image, maps01, boxes, titles, title, panel_height))


def topk_panel(image: np.ndarray, maps01: Sequence[np.ndarray], boxes: Sequence[Sequence[int] | None],
               titles: Sequence[str], title: str = "", panel_height: int = 224) -> np.ndarray:
    """The paper's panel figure: the photo, then one panel per predicted class (map and box),
    each under its title, side by side -> RGB.

    Composed directly with OpenCV and Pillow: about 10x cheaper than the same panel drawn with
    matplotlib, which cost a ``camloc localize`` run 16x its records-only time (``make bench``,
    ``figures``). Panels are the image scaled to ``panel_height``
    (very wide images are scaled to fit 2.5 panel heights), boxes scaled with it.
    """
    h, w = image.shape[:2]
    s = min(panel_height / h, 2.5 * panel_height / w)
    pw, ph = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(np.ascontiguousarray(image, dtype=np.uint8), (pw, ph), interpolation=cv2.INTER_AREA)
    panels = [_titled(small, "input")]
    for m, b, t in zip(maps01, boxes, titles):
        m_small = cv2.resize(np.asarray(m, dtype=np.float32), (pw, ph), interpolation=cv2.INTER_LINEAR)
        panels.append(_titled(draw_box(heat_overlay(small, m_small), scale_box(b, (w, h), (pw, ph))), t))
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    row = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
    if title:
        row = np.concatenate([title_band(title, row.shape[1], size=14, center=True), row], axis=0)
    return np.pad(row, ((4, 4), (4, 4), (0, 0)), constant_values=255)


@lru_cache(maxsize=4)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def printable(text: str) -> str:
    """``text`` on one line: each control character (a newline in a file name, ...) written as its
    escape (``\\n``), so a figure title or label can always be drawn."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def title_band(text: str, width: int, size: int = 13, center: bool = False) -> np.ndarray:
    """A white strip ``width`` wide holding ``text`` in black on one line (control characters
    escaped, cut with an ellipsis to fit)."""
    from PIL import Image, ImageDraw

    font = _font(size)
    band = Image.new("RGB", (width, size + 9), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    shown = printable(text)
    while shown and draw.textlength(shown, font=font) > width - 4:
        shown = shown[:-2] + "…" if len(shown) > 2 else ""
    x = max(2, (width - draw.textlength(shown, font=font)) / 2) if center else 2
    draw.text((x, 3), shown, fill=(0, 0, 0), font=font)
    return np.asarray(band)


def _titled(panel: np.ndarray, text: str) -> np.ndarray:
    return np.concatenate([title_band(text, panel.shape[1]), panel], axis=0)
