"""Records out, streamed: one JSON line per input as soon as it is done, so a killed run keeps
every record it finished; under ``torchrun`` each process writes its own part and rank 0 merges
the parts into one file in input order.

Each line is written with one ``write`` call and flushed, so a kill leaves whole lines only. A
record holding a NaN or an infinity is a bug upstream: :func:`dumps` refuses it rather than write
invalid JSON.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from camloc.errors import OutputError
from camloc.io import naming


def dumps(record: dict[str, Any]) -> str:
    """One record as one line of strict JSON (``ValueError`` for NaN or infinity)."""
    return json.dumps(record, allow_nan=False)


class JsonlWriter:
    """Stream records to ``path``; with ``world > 1``, to ``path.rank<R>-of-<W>`` parts merged by
    :meth:`close` on rank 0 (after every rank has closed its part; the caller provides the
    barrier between :meth:`finish_part` and :meth:`merge`). ``header`` (the run's
    :func:`camloc.provenance.run_header`), when given, is the file's first line.
    """

    def __init__(self, path: str | os.PathLike, rank: int = 0, world: int = 1,
                 header: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.rank, self.world = rank, world
        self.header = header
        self.count = 0
        target = self.path if world <= 1 else self.part(rank)
        self._tmp = target.with_name(target.name + ".partial") if world > 1 else target
        self._file: IO[str] | None = None
        with naming(self._tmp):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._tmp, "w", encoding="utf-8")
        if header is not None and world <= 1:  # under torchrun, merge() writes it
            self.write(-1, header)
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

    def finish_part(self) -> None:
        """Close this process's file (a part is renamed into place only once complete)."""
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
        tmp = self.path.with_name(self.path.name + ".partial")
        n = 0
        try:
            with naming(self.path), open(tmp, "w", encoding="utf-8") as out:
                if self.header is not None:
                    out.write(dumps(self.header) + "\n")
                for _, record in heapq.merge(*(_indexed(f) for f in files), key=lambda t: t[0]):
                    out.write(dumps(record) + "\n")
                    n += 1
            with naming(self.path):
                os.replace(tmp, self.path)
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
