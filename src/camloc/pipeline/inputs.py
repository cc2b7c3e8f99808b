"""Input discovery, streamed: files, folders (walked recursively) and globs become a stream of
paths without ever listing the whole input in memory.

Folders are walked one directory at a time, entries in sorted order, so the stream is the same
on every run and every process (what sharding under ``torchrun`` relies on). An explicit path is
kept whatever it is (missing, a dangling or looping link, a pipe, any suffix), and inside folders
every entry with an image suffix that is not a folder, so each gets a record: the decoder says
what is wrong with it, without opening what is not a regular file (opening a pipe would wait for a
writer forever).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable, Iterable, Iterator

from camloc.pixels.formats import IMAGE_SUFFIXES


def iter_paths(specs: Iterable[str | os.PathLike], on_error: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yield the image paths that ``specs`` (files, folders, globs) name, in a stable order.

    A folder or a glob that matches nothing is reported through ``on_error`` (one line). An
    explicit path without glob characters is always yielded, even missing, so its record says
    why it failed. A path named twice is yielded twice: remembering every path seen
    would make memory grow with the input.
    """
    report = on_error or (lambda _line: None)
    for spec in specs:
        text = os.fspath(spec)
        if os.path.isdir(text):
            found = False
            for path in walk_images(text):
                found = True
                yield path
            if not found:
                report(f"{text}: folder holds no images")
        elif glob.has_magic(text) and not os.path.lexists(text):
            matches = sorted(p for p in glob.iglob(text, recursive=True) if not os.path.isdir(p))
            if not matches:
                report(f"{text}: pattern matched no files")
            yield from matches
        else:
            yield text


def walk_images(folder: str) -> Iterator[str]:
    """Entries with an image suffix under ``folder`` that are not folders, depth first, entries
    of each directory sorted by name; links to directories are not followed (no cycles)."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from walk_images(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and not _is_folder(entry.path):
                yield entry.path
        except OSError:
            continue


def _is_folder(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:  # dangling or looping link: not a folder, the decoder reports it
        return False
