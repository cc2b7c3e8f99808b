"""Image files to pixels, below every other floor: opening and decoding a file (EXIF rotation,
any mode to 8-bit RGB, reduced JPEG decoding, the decoders' messages in one line) and the resize
geometries (squash, aspect, crop). The pipeline, the models' preprocessing, the training loader
and the figures all read images through here; this package imports nothing of camloc but
:mod:`camloc.errors`.

- :mod:`camloc.pixels.decode`: :func:`~camloc.pixels.decode.open_rgb` (the one place a file is
  opened), :func:`~camloc.pixels.decode.decode`, :func:`~camloc.pixels.decode.load_image`;
- :mod:`camloc.pixels.geometry`: :class:`~camloc.pixels.geometry.Resize` and its modes;
- :mod:`camloc.pixels.formats`: what every decoder shares (``to_rgb``, ``IMAGE_SUFFIXES``).
"""
