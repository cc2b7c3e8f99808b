"""File output that never destroys what it replaces (:func:`atomic_write_with` and the writers on it).

What stands at the path decides how it is written (:func:`output_target`):

- nothing, or a regular file: a temporary file beside it, fsynced, then renamed over it (a kill
  leaves the old file or the whole new one);
- a symlink (a chain of them): the same at the file it points to, so the link stays a link;
- a character device or a FIFO (``/dev/null``, ``/dev/stdout``, a named pipe): written as a
  stream, in place; the device is never replaced by a regular file;
- anything else (a folder, a block device, a socket): refused with one line.

A write that fails (a full disk, a folder that cannot be created) raises :class:`OutputError`,
an ``OSError`` whose one-line message names the file, not only ``[Errno 28]``.
"""

from __future__ import annotations

import json
import math
import os
import stat
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


def output_folder(path: str | os.PathLike) -> str:
    """Make the output folder ``path`` (and its parents); a file standing there is a one-line
    :class:`OutputError` naming it, not ``[Errno 17] File exists``."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(path, OSError(0, "a file stands there; give a folder for the output"), "create folder")
    with naming(path, "create folder"):
        os.makedirs(path, exist_ok=True)
    return path


def output_target(path: str | os.PathLike) -> tuple[str, bool]:
    """``(target, stream)``: where a write to ``path`` goes and how. ``target`` is ``path`` with
    its symlinks followed (a dangling link: the file it names, created); ``stream`` is true for a
    character device or a FIFO, written in place. A folder, a block device or a socket is refused
    with an :class:`OutputError` naming ``path``."""
    path = os.fspath(path)
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target, False
    except OSError as err:
        raise OutputError(path, err) from None
    if stat.S_ISREG(st.st_mode):
        return target, False
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return target, True
    kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode) else \
        "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
    raise OutputError(path, OSError(0, f"it is {kind}; give a file path"))


def open_output(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for a streamed output (records), following :func:`output_target`:
    through a symlink, onto a device or FIFO; a folder or a socket refused in one line."""
    target, _ = output_target(path)
    with naming(path):
        folder = os.path.dirname(os.path.abspath(target))
        os.makedirs(folder, exist_ok=True)
        return open(target, mode, **kwargs)


def replace_file(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move the finished file ``tmp`` to ``path`` as :func:`atomic_write_with` would write it:
    renamed over a regular file (or over a symlink's target), copied into a device or FIFO
    (then removed)."""
    target, stream = output_target(path)
    with naming(path):
        if stream:
            import shutil

            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.unlink(tmp)
        else:
            os.replace(tmp, target)


def atomic_write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary binary file, fsync it, and rename it over ``path``
    (over the file a symlink at ``path`` points to; a device or FIFO is written as a stream
    instead, see the module docstring).

    A kill at any moment leaves either the old file or the complete new one, never half; a
    failed write leaves the old file and raises :class:`OutputError` naming ``path``.
    """
    path = os.fspath(path)
    target, stream = output_target(path)
    if stream:
        with naming(path), open(target, "wb") as f:
            write(f)
            f.flush()
        return
    folder = os.path.dirname(os.path.abspath(target))
    with naming(path):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(target)[-40:], dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
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


def finite_json(obj: Any) -> Any:
    """``obj`` with NaN and infinite numbers (in dicts, lists and tuples too) as ``None``: strict
    JSON, for values that may be undefined (a diverged trial's losses, a photo's curve)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def warn_null(what: str) -> None:
    """The one-line warning for a figure written as ``null`` because it is undefined."""
    print(f"camloc: warning: {what} is undefined; written as null", file=sys.stderr)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, to_json(obj, path, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(to_json(r, path) + "\n" for r in records))
