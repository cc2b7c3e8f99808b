"""Fashion-MNIST as Debian's ``dataset-fashion-mnist`` package ships it: gzip-compressed IDX files
(``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``), read into arrays."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from camloc.errors import IdxError, one_line

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
"""Where Debian's ``dataset-fashion-mnist`` package installs the IDX files."""

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
"""Fashion-MNIST's class names, in label order."""

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array.

    The format: two zero bytes, a type code (0x08 = uint8, 0x09 = int8, 0x0B = int16,
    0x0C = int32, 0x0D = float32, 0x0E = float64), the number of dimensions ``n``, then ``n``
    big-endian uint32 sizes and the values in C order, big-endian.

    Raises:
        IdxError: missing file, bad magic, unknown type, or a size that does not match the data.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise IdxError(f"{name}: no such file") from None
    except (OSError, EOFError) as err:
        raise IdxError(f"{name}: cannot read ({one_line(err)})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{name}: not an IDX file (bad magic bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise IdxError(f"{name}: unknown IDX value type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{name}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxError(f"{name}: header says shape {shape} ({expected} bytes) but {len(raw) - header} bytes follow")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_fashion_mnist(split: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) images ``(N, 28, 28)`` uint8
    and labels ``(N,)`` int64, from ``root`` (default :data:`FASHION_DIR`)."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got '{split}'")
    root = Path(root or FASHION_DIR)
    images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IdxError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
    return images, labels.astype(np.int64)
