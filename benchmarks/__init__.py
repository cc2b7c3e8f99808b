"""Benchmarks: each ``bench_*.py`` module defines ``main() -> str`` (a Markdown section)."""
