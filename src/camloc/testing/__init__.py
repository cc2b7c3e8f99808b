"""Testing helpers, not part of the data flow: tiny datasets written in exactly the on-disk formats
the readers accept, for the test suite, the benchmarks and demos (nothing in the library imports
this package).

Each ``write_*_fixture(root, ...)`` returns a :class:`Fixture` whose ``split`` is exactly what the
matching reader must return; a painted rectangle is its image's ground-truth box, e.g.

    >>> fx = write_ilsvrc_fixture(tmp_path, "val", annotations="xml")
    >>> open_dataset(fx.root, "val").samples == fx.split.samples
    True
"""

from camloc.testing.formats import (
    ILSVRC_SYNSETS, write_cub_fixture, write_folder_fixture, write_ilsvrc_fixture, write_wsol_fixture,
)
from camloc.testing.images import PALETTE, Fixture, draw_image

__all__ = [
    "ILSVRC_SYNSETS", "PALETTE", "Fixture", "draw_image", "write_cub_fixture", "write_folder_fixture",
    "write_ilsvrc_fixture", "write_wsol_fixture",
]
