"""Decode image files into RGB PIL images, robustly.

Every failure raises :class:`ImageError` whose message is one line naming the file
and the reason, so a batch job can record it and go on with the other images.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageError(ValueError):
    """An image that cannot be used; ``str(err)`` is one line: ``<file>: <reason>``."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    16-bit and 32-bit grayscale are rescaled by their dynamic range (``I;16`` spans
    0..65535), alpha is composited on white, palettes are expanded, CMYK is converted.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I" and arr.size and arr.max() > 255:
            top = 65535.0 if arr.max() <= 65535 else float(arr.max())
            arr = arr / top * 255.0
        elif mode == "F":
            lo, hi = (float(np.nanmin(arr)), float(np.nanmax(arr))) if arr.size else (0.0, 1.0)
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        gray = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` as an RGB image, applying its EXIF orientation.

    Raises :class:`ImageError` for a missing, unreadable, truncated or non-image file,
    an empty image, or one over Pillow's decompression-bomb limit.
    """
    name = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(name) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = to_rgb(img)
                rgb.load()
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{name}: over Pillow's decompression-bomb limit ({_one_line(err)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{name}: cannot decode ({_one_line(err)})") from None
    if rgb.width < 1 or rgb.height < 1:
        raise ImageError(f"{name}: empty image ({rgb.width}x{rgb.height})")
    return rgb


def expand_paths(inputs: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """Expand files, folders (recursively, image suffixes only) and globs.

    Returns ``(paths, errors)``: each error is one line naming an input that matched nothing.
    Explicit files are kept whatever their suffix, so that a bad file is reported, not skipped.
    """
    paths: list[str] = []
    errors: list[str] = []
    for item in inputs:
        text = str(item)
        if os.path.isdir(text):
            found = sorted(
                str(p) for p in Path(text).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                errors.append(f"{text}: folder holds no images")
            paths.extend(found)
        elif os.path.exists(text):
            paths.append(text)
        elif glob.has_magic(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not found:
                errors.append(f"{text}: pattern matched no files")
            paths.extend(found)
        else:
            errors.append(f"{text}: no such file or folder")
    seen: set[str] = set()
    unique = [p for p in paths if not (p in seen or seen.add(p))]
    return unique, errors
