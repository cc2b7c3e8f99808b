"""Atomic file output: write to a temporary file beside the target, then rename.

A write that fails (a full disk, a folder that cannot be created) raises :class:`OutputError`,
an ``OSError`` whose one-line message names the file, not only ``[Errno 28]``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from camloc.errors import OutputError


@contextmanager
def naming(path: str | os.PathLike, action: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` inside the block into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(path, err, action) from None


def atomic_write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary binary file, fsync it, and rename it over ``path``.

    A kill at any moment leaves either the old file or the complete new one, never half; a
    failed write leaves the old file and raises :class:`OutputError` naming ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    with naming(path):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path)[-40:], dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(path, err) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any, path: str | os.PathLike, **kwargs: Any) -> str:
    """``json.dumps(obj)`` that refuses NaN and infinity (``NaN`` is not JSON: a strict reader
    rejects the whole file) with a one-line ``ValueError`` naming ``path``."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as err:
        raise ValueError(f"{os.fspath(path)}: cannot write JSON ({err})") from None


def json_number(value: float, what: str) -> float | None:
    """``value``, or ``None`` (JSON ``null``) with a one-line warning on stderr when it is NaN or
    infinite (an accuracy over no images, ...): nothing that is not JSON goes into a record."""
    if math.isfinite(value):
        return value
    warn_null(what)
    return None


def warn_null(what: str) -> None:
    """The one-line warning for a figure written as ``null`` because it is undefined."""
    print(f"camloc: warning: {what} is undefined; written as null", file=sys.stderr)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, to_json(obj, path, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(to_json(r, path) + "\n" for r in records))
