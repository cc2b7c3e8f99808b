"""Readers that turn files on disk into images, labels and boxes."""

from camloc.data.images import ImageError, expand_paths, load_image

__all__ = ["ImageError", "expand_paths", "load_image"]
