"""Readers that turn files on disk into images, labels and boxes."""

from camloc.data.base import DataError, Sample, Split
from camloc.data.images import ImageError, expand_paths, load_image
from camloc.data.wsol import read_wsol, write_wsol

__all__ = ["DataError", "ImageError", "Sample", "Split", "expand_paths", "load_image", "read_wsol", "write_wsol"]
