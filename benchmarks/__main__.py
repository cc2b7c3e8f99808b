"""Run the benchmarks and refresh their sections of BENCHMARKS.md.

    python -m benchmarks            # all of them
    python -m benchmarks cam        # only benchmarks/bench_cam.py
    python -m benchmarks --quick    # every code path on a few inputs, in seconds; writes nothing

Each section is kept between ``<!-- bench:NAME -->`` markers, so a run replaces its own figures
and leaves the rest of the file alone.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import benchmarks
from benchmarks.timing import QUICK_ENV
from camloc.io import atomic_write_text

DOC = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def update_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def names() -> list[str]:
    """Every benchmark: the modules ``benchmarks/bench_NAME.py``."""
    return sorted(i.name[len("bench_"):] for i in pkgutil.iter_modules(benchmarks.__path__) if i.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    import os

    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    if quick:
        os.environ[QUICK_ENV] = "1"
    known = names()
    chosen = argv or known
    unknown = [n for n in chosen if n not in known]
    if unknown:
        print(f"benchmarks: unknown {', '.join(unknown)} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"== benchmark {name}", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        section = module.main()  # a quick run: benchmarks.timing.quick() says so
        print(section, flush=True)
        if quick:
            continue
        text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
        atomic_write_text(DOC, update_section(text, name, section))
    print("quick run: BENCHMARKS.md left as it was" if quick else f"figures written to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
