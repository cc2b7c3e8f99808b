"""An image folder: one subfolder per class, no boxes.

``root/<class>/**/<image>`` with image suffixes (``.jpg``, ``.png``, ...; see
:data:`camloc.pixels.formats.IMAGE_SUFFIXES`, case-insensitive). Classes are the subfolder
names in sorted order (label = position), images are listed recursively in sorted path
order, hidden files and folders (a leading ``.``) are left out. ``Sample.image_id`` is the
path relative to ``root`` with ``/`` separators; boxes are empty and sizes ``None``.
"""

from __future__ import annotations

import os

from camloc.data.base import Sample, Split
from camloc.errors import DataError
from camloc.pixels.formats import IMAGE_SUFFIXES

__all__ = ["class_folders", "read_folder"]


def class_folders(root: str | os.PathLike) -> list[str]:
    """The non-hidden subfolders of ``root``, sorted."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _walk_images(folder: str) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(here, f) for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES))
    return sorted(found)


def read_folder(root: str | os.PathLike, name: str | None = None) -> Split:
    """Read ``root/<class>/...`` into a :class:`Split` named ``name`` (default: the folder's name).

    Empty class folders keep their class (so label indices do not shift) and are noted in
    ``Split.skipped``, as are image files lying directly in ``root``.

    Raises:
        DataError: ``root`` is not a folder, has no class subfolders, or holds no images.
    """
    base = os.fspath(root)
    if not os.path.isdir(base):
        raise DataError(f"{base}: no such folder")
    classes = class_folders(base)
    if not classes:
        raise DataError(f"{base}: no class subfolders (expected <root>/<class>/<image>)")
    samples: list[Sample] = []
    skipped: list[str] = []
    loose = [f for f in os.listdir(base) if os.path.isfile(os.path.join(base, f)) and f.lower().endswith(IMAGE_SUFFIXES)]
    if loose:
        skipped.append(f"{base}: {len(loose)} images outside the class folders ignored")
    for label, cls in enumerate(classes):
        paths = _walk_images(os.path.join(base, cls))
        if not paths:
            skipped.append(f"{os.path.join(base, cls)}: class folder holds no images")
        for path in paths:
            rel = os.path.relpath(path, base).replace(os.sep, "/")
            samples.append(Sample(image_id=rel, path=path, label=label))
    if not samples:
        raise DataError(f"{base}: no images in its {len(classes)} class folders")
    return Split(samples=samples, classes=classes, name=name or os.path.basename(os.path.normpath(base)),
                 skipped=skipped)
