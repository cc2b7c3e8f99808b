"""Run the tutorials (``docs/tutorials/*.py``, jupytext percent scripts) as notebooks and write
the executed notebooks, outputs and figures included, beside them as ``*.ipynb`` (not committed:
the site renders them). ``make docs`` runs this for the tutorials whose notebook is missing or
older than its source; ``tests/test_tutorials.py`` executes every one.

    python docs/execute_tutorials.py [--force] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parent / "tutorials"


def sources() -> list[Path]:
    """The tutorial sources, in name order."""
    return sorted(TUTORIALS.glob("*.py"))


def execute(source: Path, out: Path | None = None, timeout: int = 600):
    """Execute ``source`` in a fresh kernel, in a temporary working directory, and write the
    notebook to ``out`` (default: beside it, ``.ipynb``) only when every cell ran. Returns the
    executed notebook; a failing cell raises nbclient's ``CellExecutionError``."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    with tempfile.TemporaryDirectory(prefix="camloc-tutorial-") as work:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": work}}).execute(env=_kernel_env())
    for cell in nb.cells:  # tqdm's note that ipywidgets is absent is noise on the site
        cell["outputs"] = [o for o in cell.get("outputs", [])
                           if not (o.get("name") == "stderr" and "TqdmWarning" in o.get("text", ""))]
    out = out or source.with_suffix(".ipynb")
    tmp = out.with_name(out.name + ".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, out)
    return nb


def _kernel_env() -> dict[str, str]:
    """The environment of the kernel: this process's, with the camloc this process imports first
    on the path (the kernel runs in a temporary directory, where a relative PYTHONPATH would
    miss it)."""
    import camloc

    env = dict(os.environ)
    package_root = str(Path(camloc.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="tutorial names (default: all)")
    parser.add_argument("--force", action="store_true", help="run even when the notebook is up to date")
    args = parser.parse_args(argv)
    for source in sources():
        if args.names and source.stem not in args.names:
            continue
        out = source.with_suffix(".ipynb")
        if not args.force and out.exists() and out.stat().st_mtime >= source.stat().st_mtime:
            print(f"{source.name}: up to date")
            continue
        start = time.perf_counter()
        execute(source, out)
        print(f"{source.name}: executed in {time.perf_counter() - start:.0f} s -> {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
