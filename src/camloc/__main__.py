"""``python -m camloc`` runs the ``camloc`` command."""

import sys

from camloc.cli import main

if __name__ == "__main__":
    sys.exit(main())
