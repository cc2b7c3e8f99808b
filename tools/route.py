"""The route of one command through camloc's files, counted.

    python -m tools.route localize PHOTO [OPTIONS]          # this checkout's src/
    python -m tools.route --src OTHER/src localize PHOTO    # another tree (an older commit's worktree)

Runs the command once to warm the on-disk caches (a subprocess), then once in this process under a
profile hook (every thread). The route starts where the command's module ``commands/X.py`` is given
the parsed arguments (its ``run``; building the parser is not part of it) and ends when that returns;
in between, every Python call of a function defined in a camloc file, made from another camloc file
(through any frames of other libraries between them), in any thread, is an edge *caller file ->
callee file*. It prints

- **files**: the camloc files the route enters;
- **edges**: the distinct caller -> callee file pairs;
- **up**: edges that go back up a floor: the callee's folder imports the caller's folder, directly
  or through others (the folder graph of :mod:`tools.imports`, read from the same tree), so a lower
  floor calls a higher one (a callback or a hand-back);
- **back**: edges into a file that is still on the call stack below the caller: the route left the
  file and comes back to it by a call before returning.

Each edge is counted once however often it runs, so the figures describe the route, not the number
of images; calls made while a module is imported are not part of the route. ``--list`` prints the edges themselves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tools.imports import PACKAGE, SRC, folder_graph, import_graph


def floors_above(src: Path) -> dict[str, set[str]]:
    """``{folder: folders that import it, directly or through others}`` for the tree at ``src``."""
    graph = folder_graph(import_graph(src))
    reach: dict[str, set[str]] = {}

    def down(node: str) -> set[str]:
        if node not in reach:
            reach[node] = set()
            for nxt in graph.get(node, ()):
                reach[node] |= {nxt} | down(nxt)
        return reach[node]

    above: dict[str, set[str]] = {}
    for node in graph:
        for lower in down(node):
            above.setdefault(lower, set()).add(node)
    return above


def folder_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


class Route:
    """The edges seen by the profile hook, with the stack-depth information each needs."""

    def __init__(self, package_dir: Path, command: str) -> None:
        self.entry = f"{package_dir.name}.commands.{command.replace('-', '_')}"  # its run() is the route
        self.active = False
        self.root = str(package_dir.parent) + os.sep
        self.prefix = str(package_dir) + os.sep
        self.edges: set[tuple[str, str]] = set()
        self.back: set[tuple[str, str]] = set()
        self.files: set[str] = set()
        self.lock = threading.Lock()

    def module(self, filename: str) -> str | None:
        if not filename.startswith(self.prefix):
            return None
        parts = list(Path(filename[len(self.root):]).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def hook(self, frame, event: str, arg) -> None:  # noqa: ANN001 (the profile hook's signature)
        if event not in ("call", "return") or frame.f_code.co_name == "<module>":
            return
        callee = self.module(frame.f_code.co_filename)
        if callee is None:
            return
        if callee == self.entry and frame.f_code.co_name == "run":
            self.active = event == "call"
        if event != "call" or not self.active:
            return
        caller, below, f = None, set(), frame.f_back
        while f is not None:
            m = self.module(f.f_code.co_filename)
            if m is not None and f.f_code.co_name == "<module>":
                return  # a call made while a camloc module is imported: not the route
            if m is not None:
                if caller is None:
                    caller = m
                elif m != caller:
                    below.add(m)
            f = f.f_back
        with self.lock:
            self.files.add(callee)
            if caller is not None and caller != callee:
                self.files.add(caller)
                self.edges.add((caller, callee))
                if callee in below:
                    self.back.add((caller, callee))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.route", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=SRC, help="the source tree to import camloc from (default: src/)")
    parser.add_argument("--list", action="store_true", help="print every edge, up and back edges marked")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the camloc command and its arguments")
    args = parser.parse_args(argv)
    src = args.src.resolve()
    if not args.command:
        parser.error("give a camloc command, e.g. localize PHOTO")
    with tempfile.TemporaryDirectory() as tmp:
        command = [*args.command, "--out", os.path.join(tmp, "out")] if args.command[0] == "localize" else args.command
        env = {**os.environ, "PYTHONPATH": str(src), "TQDM_DISABLE": "1"}
        subprocess.run([sys.executable, "-m", "camloc", *command], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the graph and weight caches
        command = [*args.command, "--out", os.path.join(tmp, "out2")] if args.command[0] == "localize" else command
        sys.path.insert(0, str(src))
        os.environ["TQDM_DISABLE"] = "1"
        from camloc.cli import main as camloc_main

        route = Route(src / PACKAGE, args.command[0])
        threading.setprofile(route.hook)
        sys.setprofile(route.hook)
        try:
            code = camloc_main(command)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]
    above = floors_above(src)
    up = {(a, b) for a, b in route.edges if folder_of(a) != folder_of(b) and folder_of(b) in above.get(folder_of(a), set())}
    if args.list:
        for a, b in sorted(route.edges):
            marks = ("up " if (a, b) in up else "") + ("back" if (a, b) in route.back else "")
            print(f"{a} -> {b}  {marks}".rstrip())
    print(f"camloc {' '.join(args.command[:1])} (exit {code}), tree {src}: {len(route.files)} files, "
          f"{len(route.edges)} edges, {len(up)} up a floor, {len(route.back)} back into a file on the stack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
