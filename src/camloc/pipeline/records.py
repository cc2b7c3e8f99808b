"""Records out, streamed: one JSON line per input as soon as it is done, so a killed run keeps
every record it finished; under ``torchrun`` each process writes its own part and rank 0 merges
the parts into one file in input order.

Each line is written with one ``write`` call and flushed, so a kill leaves whole lines only. A
record holding a NaN or an infinity is a bug upstream: :func:`dumps` refuses it rather than write
invalid JSON.

An existing file is never truncated before something can replace it (DESIGN.md, "Output that
never destroys"): ``mode="append"`` adds to it (a resumed run, :func:`recorded_inputs` says which
inputs it holds), ``mode="replace"`` streams into ``<name>.partial`` and renames that over the
file only when the run completes; a symlink is written through, a device or FIFO streamed to
(:mod:`camloc.io`).
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from camloc.errors import DataError, OutputError
from camloc.io import naming, open_output, output_target, replace_file

MODES = ("new", "append", "replace")
HEADER_PREFIX = b'{"camloc_run"'  # the run's header line (camloc.provenance), not a record


def dumps(record: dict[str, Any]) -> str:
    """One record as one line of strict JSON (``ValueError`` for NaN or infinity)."""
    return json.dumps(record, allow_nan=False)


class JsonlWriter:
    """Stream records to ``path``; with ``world > 1``, to ``path.rank<R>-of-<W>`` parts merged by
    :meth:`close` on rank 0 (after every rank has closed its part; the caller provides the
    barrier between :meth:`finish_part` and :meth:`merge`). ``header`` (the run's
    :func:`camloc.provenance.run_header`), when given, is the file's first line (a resumed file
    keeps the header of the run that began it).

    ``mode``: ``"new"`` writes ``path`` from the start (the caller has checked that it holds no
    records), ``"append"`` adds to its records, ``"replace"`` streams into ``<path>.partial``
    and renames it over ``path`` once the run is complete (:meth:`finish_part` with
    ``complete=True``), so a killed or failed run leaves the old records.
    """

    def __init__(self, path: str | os.PathLike, rank: int = 0, world: int = 1, mode: str = "new",
                 header: dict[str, Any] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.path = Path(path)
        self.rank, self.world, self.mode = rank, world, mode
        self.header = None if mode == "append" else header
        self.count = 0
        final, stream = output_target(self.path)
        self._staged = world <= 1 and mode == "replace" and not stream
        target = Path(final) if self._staged else self.path if world <= 1 else self.part(rank)
        # a staged file lies beside the file it replaces (through a symlink: beside its target)
        self._tmp = target.with_name(target.name + ".partial") if world > 1 or self._staged else target
        self._file: IO[str] | None = None
        with naming(self._tmp):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
        if world <= 1 and not self._staged:
            self._file = open_output(self._tmp, "a" if mode == "append" else "w", encoding="utf-8")
        else:
            with naming(self._tmp):
                self._file = open(self._tmp, "w", encoding="utf-8")
        if self.header is not None and world <= 1:  # under torchrun, merge() writes it
            self.write(-1, self.header)
            self.count = 0

    def part(self, rank: int) -> Path:
        return self.path.with_name(f"{self.path.name}.rank{rank}-of-{self.world}")

    def write(self, index: int, record: dict[str, Any]) -> None:
        """Write the record of input ``index`` (indices increase along the stream)."""
        assert self._file is not None
        line = dumps(record) if self.world <= 1 else dumps({"index": index, "record": record})
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as err:  # a full disk: name the file, and drop the unwritable rest
            self._abandon()
            raise OutputError(self._tmp, err) from None
        self.count += 1

    def _abandon(self) -> None:
        """Close the file after a failed write without flushing the unwritten buffer again."""
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass

    def finish_part(self, complete: bool = True, keep_empty: bool = True) -> None:
        """Close this process's file (a part is renamed into place only once complete; with
        ``mode="replace"``, the new file replaces the old one only when ``complete``). An
        incomplete staged file holding no record is removed unless ``keep_empty``."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError as err:
                self._abandon()
                raise OutputError(self._tmp, err) from None
            self._file = None
            if self.world > 1:
                with naming(self.part(self.rank)):
                    os.replace(self._tmp, self.part(self.rank))
            elif self._staged and complete:
                replace_file(self._tmp, self.path)
            elif self._staged and not keep_empty and not self.count:
                with naming(self._tmp):
                    self._tmp.unlink(missing_ok=True)

    def merge(self) -> int:
        """Rank 0: merge every complete part into ``path`` in input order, remove the parts.
        Returns the number of records."""
        if self.world <= 1:
            return self.count
        parts = [self.part(r) for r in range(self.world)]
        missing = [str(p) for p in parts if not p.is_file()]
        if missing:
            raise RuntimeError(f"cannot merge {self.path}: part {missing[0]} is missing")
        files = [open(p, encoding="utf-8") for p in parts]
        final = Path(output_target(self.path)[0])
        tmp = final.with_name(final.name + ".partial")
        n = 0
        try:
            if self.mode == "append":  # the merged records follow the earlier run's
                out = open_output(self.path, "a", encoding="utf-8")
            else:
                with naming(self.path):
                    out = open(tmp, "w", encoding="utf-8")
            with naming(self.path), out:
                if self.header is not None:
                    out.write(dumps(self.header) + "\n")
                for _, record in heapq.merge(*(_indexed(f) for f in files), key=lambda t: t[0]):
                    out.write(dumps(record) + "\n")
                    n += 1
            if self.mode != "append":
                replace_file(tmp, self.path)
        finally:
            for f in files:
                f.close()
        for p in parts:
            p.unlink()
        return n

    def close(self) -> None:
        self.finish_part()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish_part()


def _indexed(f: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for line in f:
        if line.strip():
            d = json.loads(line)
            yield int(d["index"]), d["record"]


def count_records(path: str | os.PathLike) -> int:
    """The number of records in the results file ``path`` (its lines but the run's header line;
    0 when it is missing, empty, or a device or FIFO: nothing there to lose)."""
    target, stream = output_target(path)
    if stream or not os.path.isfile(target):
        return 0
    n = 0
    with naming(path, "read"), open(target, "rb") as f:
        for line in f:
            n += bool(line.strip()) and not line.startswith(HEADER_PREFIX)
    return n


def recorded_inputs(path: str | os.PathLike) -> set[str]:
    """The ``"image"`` of every record in ``path`` (error records too: a resumed run does not
    retry them). A half line at the end (a write cut by a kill) is removed first, so the records
    appended next start on a line of their own; a line that is not a JSON record is a
    :class:`DataError` naming the file and line."""
    target, stream = output_target(path)
    if stream or not os.path.isfile(target):
        return set()
    seen: set[str] = set()
    with naming(path, "read"), open(target, "rb+") as f:
        pos = 0
        for i, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):  # a half line: not a record
                f.truncate(pos)
                break
            pos += len(line)
            if not line.strip() or line.startswith(HEADER_PREFIX):
                continue
            try:
                seen.add(str(json.loads(line)["image"]))
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{os.fspath(path)}:{i}: not a results record; cannot resume from this file") from None
    return seen
