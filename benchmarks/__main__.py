"""Run the benchmarks and refresh their sections of BENCHMARKS.md.

    python -m benchmarks            # all of them
    python -m benchmarks cam        # only benchmarks/bench_cam.py
    python -m benchmarks quality --quick   # a benchmark's smoke run (those whose main takes quick): printed, not written

Each section is kept between ``<!-- bench:NAME -->`` markers, so a run replaces its own figures
and leaves the rest of the file alone.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

import benchmarks
from camloc.io import atomic_write_text

DOC = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def update_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    names = sorted(i.name[len("bench_"):] for i in pkgutil.iter_modules(benchmarks.__path__) if i.name.startswith("bench_"))
    chosen = argv or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"benchmarks: unknown {', '.join(unknown)} (known: {', '.join(names)})", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"== benchmark {name}", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        if quick:
            if "quick" not in inspect.signature(module.main).parameters:
                print(f"benchmarks: {name} has no --quick run", file=sys.stderr)
                return 2
            print(module.main(quick=True), flush=True)
            continue
        section = module.main()
        print(section, flush=True)
        text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
        atomic_write_text(DOC, update_section(text, name, section))
    if not quick:
        print(f"figures written to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
