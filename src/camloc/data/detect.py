"""Open any supported dataset by its root: detect the format, then call its reader.

Detection order for ``open_dataset(root, split)`` (the first match wins):

1. ``wsol``: ``root/image_ids.txt`` + ``root/class_labels.txt`` (``root`` is the metadata
   folder), or the same in ``root/<split>/``.
2. ``cub``: ``root/images.txt`` + ``root/classes.txt``, or the same in ``root/CUB_200_2011/``.
   CUB-200-2011 ships ``train`` and ``test``; ``split="val"`` reads ``test``.
3. ``ilsvrc``: ``root/LOC_val_solution.csv``, ``root/LOC_synset_mapping.txt``,
   ``root/ILSVRC/Data/CLS-LOC/``, ``root/val_xml/``, ``root/<split>/ILSVRC2012_val_*`` files, or
   wnid-named (``n`` + 8 digits) class folders in ``root/train/`` or ``root/<split>/``.
4. ``folder``: class subfolders in ``root/<split>/``, else in ``root`` itself (unless ``root``
   holds ``train/``, ``val/`` or ``test/`` folders but not ``<split>/``: that is an error).
"""

from __future__ import annotations

import os
import re

from camloc.data.base import Split
from camloc.errors import DataError
from camloc.data.cub import find_cub_root, read_cub
from camloc.data.folder import class_folders, read_folder
from camloc.data.ilsvrc import read_ilsvrc
from camloc.data.wsol import is_wsol_dir, read_wsol

__all__ = ["FORMATS", "detect_format", "open_dataset"]

FORMATS = ("wsol", "cub", "ilsvrc", "folder")
SPLIT_NAMES = ("train", "val", "test")
_WNID = re.compile(r"n\d{8}$")


def _has_wnid_folders(folder: str) -> bool:
    if not os.path.isdir(folder):
        return False
    names = class_folders(folder)
    return bool(names) and all(_WNID.match(n) for n in names[:20])


def _looks_ilsvrc(root: str, split: str) -> bool:
    if any(os.path.isfile(os.path.join(root, f)) for f in ("LOC_val_solution.csv", "LOC_synset_mapping.txt")):
        return True
    if os.path.isdir(os.path.join(root, "ILSVRC", "Data", "CLS-LOC")) or os.path.isdir(os.path.join(root, "val_xml")):
        return True
    split_dir = os.path.join(root, split)
    if os.path.isdir(split_dir):
        with os.scandir(split_dir) as it:
            for k, entry in enumerate(it):
                if entry.name.startswith("ILSVRC2012_val_"):
                    return True
                if k > 50:
                    break
    return _has_wnid_folders(os.path.join(root, "train")) or _has_wnid_folders(split_dir)


def detect_format(root: str | os.PathLike, split: str = "val") -> tuple[str, str]:
    """``(format, path)``: which reader fits ``root`` and the folder to hand it (see the module docstring).

    Raises:
        DataError: one line naming ``root`` and what was looked for, when nothing matches.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such folder")
    if is_wsol_dir(root):
        return "wsol", root
    if is_wsol_dir(os.path.join(root, split)):
        return "wsol", os.path.join(root, split)
    cub = find_cub_root(root)
    if cub is not None:
        return "cub", cub
    if _looks_ilsvrc(root, split):
        return "ilsvrc", root
    split_dir = os.path.join(root, split)
    if os.path.isdir(split_dir) and class_folders(split_dir):
        return "folder", split_dir
    subs = class_folders(root)
    split_like = [s for s in subs if s in SPLIT_NAMES]
    if split_like and not os.path.isdir(split_dir):
        raise DataError(f"{root}: no {split}/ folder (it holds {', '.join(split_like)})")
    if subs and not split_like:
        return "folder", root
    raise DataError(
        f"{root}: no dataset found for split {split!r}: looked for WSOL metadata (image_ids.txt + class_labels.txt "
        f"in the folder or in {split}/), CUB-200-2011 (images.txt + classes.txt), ILSVRC 2012 (LOC_val_solution.csv, "
        f"LOC_synset_mapping.txt, val_xml/, ILSVRC/Data/CLS-LOC/, {split}/ILSVRC2012_val_*), and class folders "
        f"({split}/<class>/ or <class>/)")


def open_dataset(
    root: str | os.PathLike,
    split: str = "val",
    format: str = "auto",
    *,
    image_root: str | os.PathLike | None = None,
    strict: bool = False,
) -> Split:
    """Read ``split`` of the dataset at ``root``, in ``format`` (``"auto"`` detects it).

    Args:
        root: the dataset root (or a WSOL metadata folder).
        split: the split name; for CUB ``"val"`` means ``"test"``; for WSOL metadata it picks
            ``root/<split>/`` unless ``root`` is itself a metadata folder.
        format: ``"auto"`` or one of :data:`FORMATS`.
        image_root: WSOL only: the folder image ids are relative to (default: the metadata folder).
        strict: raise on the first per-image problem instead of skipping the image.

    Raises:
        DataError: unknown format, nothing detected, or the reader's own errors.
    """
    if format != "auto" and format not in FORMATS:
        raise DataError(f"unknown dataset format {format!r}; expected auto or one of {', '.join(FORMATS)}")
    root = os.fspath(root)
    if format == "auto":
        format, path = detect_format(root, split)
    elif format == "wsol":
        path = root if is_wsol_dir(root) else os.path.join(root, split)
    elif format == "cub":
        path = find_cub_root(root) or root
    elif format == "folder":
        split_dir = os.path.join(root, split)
        path = split_dir if os.path.isdir(split_dir) and class_folders(split_dir) else root
    else:
        path = root
    if image_root is not None and format != "wsol":
        raise DataError(f"{root}: image_root applies to WSOL metadata only, not to the {format} format")
    if format == "wsol":
        return read_wsol(path, image_root, strict=strict)
    if format == "cub":
        return read_cub(path, "test" if split == "val" else split, strict=strict)
    if format == "ilsvrc":
        return read_ilsvrc(path, split, strict=strict)
    return read_folder(path, name=split if path != root else None)
