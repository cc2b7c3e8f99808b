"""Readers that turn files on disk into images, labels and boxes.

Every reader returns a :class:`Split` of :class:`Sample` records with boxes as inclusive
integer pixel corners ``[x0, y0, x1, y1]``; :func:`open_dataset` detects the format.
"""

from camloc.data.base import Sample, Split
from camloc.errors import DataError
from camloc.data.cub import read_cub
from camloc.data.detect import FORMATS, detect_format, open_dataset
from camloc.data.folder import read_folder
from camloc.data.ilsvrc import read_ilsvrc
from camloc.errors import ImageError
from camloc.data.wsol import read_wsol, write_wsol

__all__ = [
    "FORMATS", "DataError", "ImageError", "Sample", "Split", "detect_format",
    "open_dataset", "read_cub", "read_folder", "read_ilsvrc", "read_wsol", "write_wsol",
]
