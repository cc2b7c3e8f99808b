"""What every decoder of camloc shares: any Pillow mode to 8-bit RGB (:func:`to_rgb`), and the
decoders' own messages (libtiff, Pillow warnings) caught into the one-line error instead of
stderr (:func:`decoder_messages`). Files are opened in one place, :func:`camloc.pixels.decode.open_rgb`.
"""

from __future__ import annotations

import glob
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from camloc.errors import one_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


_decoder_log = threading.local()
_tiff_handler: object = None  # the installed ctypes callback, kept alive; False when none could be


def _install_tiff_handler() -> None:
    """Send Pillow's libtiff errors and warnings to :func:`decoder_messages` instead of stderr.

    libtiff prints them from C ("LZWDecode: Not enough data at scanline 0 ..."), out of reach of
    Python's ``warnings``; this sets its handlers (once, for the libtiff bundled with Pillow; a
    no-op where that library or ``vsnprintf`` cannot be found).
    """
    global _tiff_handler
    if _tiff_handler is not None:
        return
    _tiff_handler = False
    try:
        import ctypes

        import PIL

        base = os.path.dirname(PIL.__file__)
        libs = sorted(glob.glob(os.path.join(base, "..", "pillow.libs", "libtiff*"))
                      + glob.glob(os.path.join(base, ".dylibs", "libtiff*")))
        if not libs:
            return
        tiff, libc = ctypes.CDLL(libs[0]), ctypes.CDLL(None)
        vsnprintf = libc.vsnprintf
        vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

        @ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
        def handler(module, fmt, ap):  # (const char *module, const char *fmt, va_list ap)
            try:
                log = getattr(_decoder_log, "messages", None)
                if log is not None and len(log) < 8:
                    buf = ctypes.create_string_buffer(300)
                    vsnprintf(buf, len(buf), fmt, ap)
                    where, text = (module or b"libtiff").decode(errors="replace"), buf.value.decode(errors="replace")
                    log.append(text if text.startswith(where + ":") else f"{where}: {text}")
            except Exception:  # noqa: BLE001 -- a C callback must not raise
                pass

        tiff.TIFFSetErrorHandler.restype = tiff.TIFFSetWarningHandler.restype = ctypes.c_void_p
        tiff.TIFFSetErrorHandler(handler)
        tiff.TIFFSetWarningHandler(handler)
        _tiff_handler = handler
    except (OSError, AttributeError, ImportError, TypeError):
        return


@contextmanager
def decoder_messages() -> Iterator[list[str]]:
    """Within the block, decoder chatter is collected, one line each, in the list yielded, not
    printed: Python warnings (numpy's, Pillow's) and libtiff's messages from this thread.
    A decoder that then fails has them in its one-line error; a decoder that succeeds drops them.
    ``DecompressionBombWarning`` is raised as an error."""
    _install_tiff_handler()
    messages: list[str] = []
    previous = getattr(_decoder_log, "messages", None)
    _decoder_log.messages = messages
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                yield messages
            finally:
                messages.extend(one_line(w.message) for w in caught)
    finally:
        _decoder_log.messages = previous


def with_messages(reason: str, messages: list[str]) -> str:
    """``reason``, followed by the first distinct decoder messages, on one line."""
    extra = [m for m in dict.fromkeys(one_line(m) for m in messages) if m and m not in reason][:2]
    return "; ".join([reason, *extra])[:300]


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    16-bit grayscale (``I;16``) spans 0..65535. 32-bit integer grayscale (``I``) is read as 8-bit
    values when it lies in 0..255, as 16-bit when in 0..65535, else rescaled by its range.
    32-bit float grayscale (``F``) is rescaled by the range of its finite values; ``+inf``
    becomes white, ``-inf`` and NaN black. A rescaled image with no range (one value) becomes
    mid-gray (128); a float image with no finite value is a ``ValueError``. Alpha is composited
    on white, palettes are expanded, CMYK is converted.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_gray_to_8bit(img), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def _gray_to_8bit(img: Image.Image) -> np.ndarray:
    """The 8-bit gray values of a 16/32-bit integer or 32-bit float grayscale image (see :func:`to_rgb`)."""
    with np.errstate(all="ignore"):  # non-finite values are handled below, never warned about
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        finite = np.isfinite(arr)
        if arr.size and not finite.any():
            raise ValueError(f"no finite pixel values in a {img.width}x{img.height} {img.mode} image")
        lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if arr.size else (0.0, 0.0)
        if img.mode == "I" and lo >= 0 and hi <= 255:
            return arr.astype(np.uint8)
        if img.mode == "I" and lo >= 0 and hi <= 65535:
            return np.rint(arr / 257.0).astype(np.uint8)
        if hi == lo:
            return np.full(arr.shape, 128, np.uint8)
        out = np.where(finite, (arr - lo) / (hi - lo) * 255.0, np.where(arr == np.inf, 255.0, 0.0))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
