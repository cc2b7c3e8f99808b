"""Scripts of the repository, not of the library (run from the repository root):
``python -m tools.demo`` (``make demo``) and ``python -m tools.coverage docs/coverage.md`` (the
exactness table of the documentation)."""
