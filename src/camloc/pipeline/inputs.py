"""Input discovery, streamed: files, folders (walked recursively) and globs become a stream of
paths without ever listing the whole input in memory.

Folders are walked one directory at a time, entries in sorted order, so the stream is the same
on every run and every process (what sharding under ``torchrun`` relies on). An explicit file is
kept whatever its suffix, so that a bad file is reported rather than skipped; inside folders only
image suffixes are taken. Non-regular files (pipes, sockets, devices) are never opened: opening a
pipe would wait for a writer forever.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable, Iterable, Iterator

from camloc.data.images import IMAGE_SUFFIXES


def iter_paths(specs: Iterable[str | os.PathLike], on_error: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yield the image paths that ``specs`` (files, folders, globs) name, in a stable order.

    Each spec that matches nothing is reported through ``on_error`` (one line) and skipped. An
    explicit path is yielded even if it is not a regular file, so the decoder reports it
    (without opening it). A path named twice is yielded twice: remembering every path seen
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
        elif os.path.lexists(text):
            yield text
        elif glob.has_magic(text):
            matches = sorted(p for p in glob.iglob(text, recursive=True) if _is_regular(p))
            if not matches:
                report(f"{text}: pattern matched no files")
            yield from matches
        else:
            report(f"{text}: no such file or folder")


def walk_images(folder: str) -> Iterator[str]:
    """Image files under ``folder``, depth first, entries of each directory sorted by name;
    symbolic links to files are followed, links to directories are not (no cycles)."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from walk_images(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                if _is_regular(entry.path):
                    yield entry.path
        except OSError:
            continue


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
