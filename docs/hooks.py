"""MkDocs hooks: the repository's BENCHMARKS.md and CHANGELOG.md become the pages
``benchmarks.md`` and ``changelog.md`` (their links, written from the repository root, are made
relative to the site), and links from the older pages to ``../BENCHMARKS.md`` point at the page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSERTED = {"benchmarks.md": "BENCHMARKS.md", "changelog.md": "CHANGELOG.md"}


def _from_root(text: str) -> str:
    text = re.sub(r"\]\(docs/", "](", text)
    text = re.sub(r"\]\(BENCHMARKS\.md", "](benchmarks.md", text)
    text = re.sub(r"\]\(CHANGELOG\.md", "](changelog.md", text)
    return text


def on_page_markdown(markdown: str, page, config, files) -> str:
    source = INSERTED.get(page.file.src_uri)
    if source is not None:
        return _from_root((ROOT / source).read_text(encoding="utf-8"))
    depth = page.file.src_uri.count("/")
    up = "../" * depth
    return re.sub(r"\]\((\.\./)+BENCHMARKS\.md", f"]({up}benchmarks.md", markdown)
