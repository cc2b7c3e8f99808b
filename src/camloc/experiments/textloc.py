"""A generated, offline benchmark for weakly supervised text detection.

Images are crops of the photos bundled with scikit-image (none of which shows legible text), with
or without rendered words (one by default); the only labels a classifier sees are ``"text"`` /
``"no_text"``. The rendered words' tight ink boxes are kept to score localization.

* Backgrounds: each photo is cut along its longer side into a training part (first 65 %) and a
  test part (last 35 %), so test backgrounds are pixels never seen in training. A crop is a
  random square of 50-100 % of the part's shorter side, resized to ``size x size`` (448 by
  default: at that size the default backbone's maps are 14 x 14, the paper's map resolution).
* Words: random letter strings of 3-8 letters (lower, Title or UPPER case) in one of matplotlib's
  bundled DejaVu TrueType fonts, a font size uniform in ``font_px`` (36-80 px per 224 px of
  image), dark on light or light on dark backgrounds with a random hue, at random
  non-overlapping places inside the image.
* Boxes: ``[x0, y0, x1, y1]`` inclusive pixel corners of the pixels where the word's rendered
  coverage exceeds 1/4 (DESIGN.md's convention).

Everything is deterministic from ``seed``: image ``i`` of split ``s`` draws from
``numpy.random.default_rng([seed, s, i])``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from camloc.data.base import Sample, Split
from camloc.errors import TextlocError, one_line
from camloc.io import atomic_write_bytes, atomic_write_json

FORMAT = "camloc-textloc/1"
CLASSES = ["no_text", "text"]
SPLITS = ("train", "test")
PHOTOS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "gravel", "grass", "brick", "coins", "camera",
          "moon", "retina", "immunohistochemistry", "stereo_motorcycle", "cell", "clock")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSerif-Italic.ttf")
TRAIN_PART = 0.65
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    from camloc.extras import require

    data = require("skimage.data", "demo", "the text benchmark's photos (bundled with scikit-image)")
    a = getattr(data, name)()
    if isinstance(a, tuple):  # stereo pairs
        a = a[0]
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = (a.astype(np.float64) / max(float(a.max()), 1e-12) * 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _part(photo: np.ndarray, split: str) -> np.ndarray:
    h, w = photo.shape[:2]
    if w >= h:
        cut = int(round(w * TRAIN_PART))
        return photo[:, :cut] if split == "train" else photo[:, cut:]
    cut = int(round(h * TRAIN_PART))
    return photo[:cut] if split == "train" else photo[cut:]


def font_path(name: str) -> str:
    """Path of a TrueType font bundled with matplotlib (``mpl-data/fonts/ttf``)."""
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)


@lru_cache(maxsize=256)
def _font(name: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(name), px)


def background(rng: np.random.Generator, split: str, size: int) -> np.ndarray:
    """A random square crop of a bundled photo's ``split`` part, resized to ``size``."""
    photo = _part(_photo(PHOTOS[int(rng.integers(len(PHOTOS)))]), split)
    h, w = photo.shape[:2]
    side = int(round(min(h, w) * rng.uniform(0.5, 1.0)))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(photo[y0 : y0 + side, x0 : x0 + side])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.uint8).copy()


def random_word(rng: np.random.Generator) -> str:
    word = "".join(LETTERS[int(i)] for i in rng.integers(0, 26, int(rng.integers(3, 9))))
    case = int(rng.integers(3))
    return word.upper() if case == 0 else word.title() if case == 1 else word


def _text_color(rng: np.random.Generator, region: np.ndarray) -> tuple[int, int, int]:
    """A random hue, dark on a light region or light on a dark one."""
    import colorsys

    lum = float(region.mean())
    value = rng.uniform(0.0, 0.2) if lum > 128 else rng.uniform(0.85, 1.0)
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.9), value)
    return int(r * 255), int(g * 255), int(b * 255)


def _overlaps(a: Sequence[int], b: Sequence[int], margin: int = 4) -> bool:
    return not (a[2] + margin < b[0] or b[2] + margin < a[0] or a[3] + margin < b[1] or b[3] + margin < a[1])


def render_words(rng: np.random.Generator, img: np.ndarray, n_words: int, font_px: tuple[int, int] = (36, 80)
                 ) -> tuple[np.ndarray, list[list[int]], list[str]]:
    """Draw up to ``n_words`` non-overlapping random words on ``img`` -> (image, boxes, words).

    Font sizes are uniform in ``font_px`` (pixels at 224 px, scaled with the image).
    """
    h, w = img.shape[:2]
    out = img.astype(np.float64)
    boxes: list[list[int]] = []
    words: list[str] = []
    scale = min(h, w) / 224.0
    for _ in range(n_words):
        for _attempt in range(30):
            word = random_word(rng)
            font = _font(FONTS[int(rng.integers(len(FONTS)))], max(8, int(round(rng.uniform(*font_px) * scale))))
            layer = Image.new("L", (w, h), 0)
            draw = ImageDraw.Draw(layer)
            left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
            tw, th = right - left, bottom - top
            if tw >= w - 4 or th >= h - 4:
                continue
            x = int(rng.integers(2, w - tw - 1)) - left
            y = int(rng.integers(2, h - th - 1)) - top
            draw.text((x, y), word, fill=255, font=font)
            alpha = np.asarray(layer, dtype=np.float64) / 255.0
            ys, xs = np.nonzero(alpha > 0.25)
            if len(xs) == 0:
                continue
            box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
            if any(_overlaps(box, b) for b in boxes):
                continue
            color = np.asarray(_text_color(rng, out[box[1] : box[3] + 1, box[0] : box[2] + 1]), np.float64)
            out = out * (1 - alpha[..., None]) + color * alpha[..., None]
            boxes.append(box)
            words.append(word)
            break
    return np.clip(np.round(out), 0, 255).astype(np.uint8), boxes, words


def make_image(seed: int, split: str, i: int, text: bool, size: int = 448, max_words: int = 1,
               font_px: tuple[int, int] = (36, 80)) -> tuple[np.ndarray, list[list[int]], list[str]]:
    """Image ``i`` of ``split``: a background, with 1..``max_words`` words when ``text``
    -> (image, boxes, words)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), i])
    img = background(rng, split, size)
    if not text:
        return img, [], []
    return render_words(rng, img, int(rng.integers(1, max_words + 1)), font_px)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make_textloc(root: str | os.PathLike, n_train: int = 200, n_test: int = 100, seed: int = 0,
                 size: int = 448, max_words: int = 1, font_px: tuple[int, int] = (36, 80)) -> dict[str, Split]:
    """Write the benchmark under ``root`` (PNG images + ``textloc.json``) and return its splits.

    Each split holds half ``text`` and half ``no_text`` images (image ``i`` has text when ``i`` is
    odd). A folder already holding the same benchmark (same sizes, seed) is reused as it is.
    """
    root = os.fspath(root)
    meta_path = os.path.join(root, "textloc.json")
    params = {"n_train": int(n_train), "n_test": int(n_test), "seed": int(seed), "size": int(size),
              "max_words": int(max_words), "font_px": [int(font_px[0]), int(font_px[1])]}
    if os.path.exists(meta_path):
        try:
            with open(meta_path, encoding="utf-8") as f:
                if json.load(f).get("params") == params:
                    return {s: read_textloc(root, s) for s in SPLITS}
        except (OSError, ValueError):
            pass
    splits: dict[str, list[dict]] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        records = []
        for i in range(int(n)):
            text = i % 2 == 1
            img, boxes, words = make_image(seed, split, i, text, size, max_words, font_px)
            rel = f"{split}/{CLASSES[int(text)]}/{i:05d}.png"
            atomic_write_bytes(os.path.join(root, rel), _png(img))
            records.append({"file": rel, "label": CLASSES[int(text)], "boxes": boxes, "words": words})
        splits[split] = records
    atomic_write_json(meta_path, {"format": FORMAT, "params": params, "classes": CLASSES, "splits": splits})
    return {s: read_textloc(root, s) for s in SPLITS}


def read_textloc(root: str | os.PathLike, split: str) -> Split:
    """Read a split written by :func:`make_textloc`; ``Sample.boxes`` are the words' boxes."""
    root = os.fspath(root)
    meta_path = os.path.join(root, "textloc.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise TextlocError(f"{meta_path}: no such file (write the benchmark with make_textloc)") from None
    except (OSError, ValueError) as err:
        raise TextlocError(f"{meta_path}: unreadable ({one_line(err)})") from None
    if meta.get("format") != FORMAT:
        raise TextlocError(f"{meta_path}: not a textloc file (no '{FORMAT}' format tag)")
    if split not in meta.get("splits", {}):
        raise TextlocError(f"{meta_path}: no split '{split}' (has {', '.join(meta.get('splits', {}))})")
    samples = []
    for r in meta["splits"][split]:
        samples.append(Sample(image_id=r["file"], path=os.path.join(root, r["file"]), label=CLASSES.index(r["label"]),
                              boxes=[list(b) for b in r["boxes"]], size=(meta["params"]["size"],) * 2))
    return Split(samples=samples, classes=list(CLASSES), name=f"textloc-{split}")
