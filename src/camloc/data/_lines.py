"""Line-oriented reading of the plain-text metadata files the dataset formats ship.

Every reader goes through :func:`read_rows` so that all of them report bad input the same
way: a one-line :class:`~camloc.data.base.DataError` ``<file>:<line>: <reason>``.
"""

from __future__ import annotations

import math
import os

from camloc.errors import DataError, one_line


def where(path: str | os.PathLike, line: int | None = None) -> str:
    """``<file>:<line>`` (or ``<file>``) for the start of an error message."""
    return f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)


def read_lines(path: str | os.PathLike) -> list[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file as ``(line_number, text)``, numbered from 1.

    Line ends (``\\n``, ``\\r\\n``) and a leading byte-order mark are removed; lines holding
    only white space are left out. A missing file, a folder, or bytes that are not UTF-8
    raise :class:`DataError`.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a folder, not a file") from None
    except OSError as err:
        raise DataError(f"{name}: cannot read ({one_line(err)})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{name}:{line}: not UTF-8 text") from None
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            out.append((number, line))
    return out


def read_rows(
    path: str | os.PathLike, fields: int | tuple[int, ...], sep: str | None = ",", maxsplit: int = -1
) -> list[tuple[int, list[str]]]:
    """Split each non-blank line on ``sep`` (``None``: runs of white space).

    ``fields`` is the allowed field count (or counts); any other count raises
    :class:`DataError` naming file and line.
    """
    allowed = (fields,) if isinstance(fields, int) else fields
    rows = []
    for number, line in read_lines(path):
        parts = line.split(sep, maxsplit) if sep is not None else line.split(None, maxsplit)
        if len(parts) not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise DataError(f"{where(path, number)}: expected {want} fields, got {len(parts)}")
        rows.append((number, parts))
    return rows


def parse_int(text: str, path: str | os.PathLike, line: int, what: str) -> int:
    """An integer written as ``12`` (or an integral float such as ``12.0``)."""
    try:
        return int(text.strip())
    except ValueError:
        pass
    value = parse_float(text, path, line, what)
    if not value.is_integer():
        raise DataError(f"{where(path, line)}: {what} {text.strip()!r} is not an integer")
    return int(value)


def parse_float(text: str, path: str | os.PathLike, line: int, what: str) -> float:
    """A finite float."""
    try:
        value = float(text.strip())
    except ValueError:
        raise DataError(f"{where(path, line)}: {what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where(path, line)}: {what} {text.strip()!r} is not finite")
    return value


def box_problem(box: list[int], size: tuple[int, int] | None) -> str | None:
    """Why an inclusive box ``[x0, y0, x1, y1]`` is unusable, or ``None`` when it is fine.

    A valid box has ``x0 <= x1`` and ``y0 <= y1`` and, when the image size ``(w, h)`` is
    known, lies inside the image: ``0 <= x0``, ``0 <= y0``, ``x1 <= w - 1``, ``y1 <= h - 1``.
    """
    x0, y0, x1, y1 = box
    if x1 < x0:
        return f"box {box} has x1 < x0"
    if y1 < y0:
        return f"box {box} has y1 < y0"
    if size is not None:
        w, h = size
        if x0 < 0 or y0 < 0 or x1 > w - 1 or y1 > h - 1:
            return f"box {box} lies outside the {w}x{h} image (corners must be in [0, w-1] x [0, h-1])"
    return None


class Problems:
    """Per-image problems: raise at once when ``strict``, else remember the first reason per image.

    ``lines`` collects one-line reasons for metadata lines left out (they name no kept image).
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.by_image: dict[str, str] = {}
        self.lines: list[str] = []

    def image(self, image_id: str, message: str) -> None:
        """``message`` (``<file>:<line>: ...``) makes ``image_id`` unusable."""
        if self.strict:
            raise DataError(message)
        self.by_image.setdefault(image_id, message)

    def line(self, message: str) -> None:
        """A metadata line that is ignored."""
        if self.strict:
            raise DataError(message)
        self.lines.append(message)

    def skipped(self, image_id: str) -> str | None:
        return self.by_image.get(image_id)
