"""camloc's version (semantic versioning; CHANGELOG.md says what each release changed)."""

__version__ = "0.2.0"
