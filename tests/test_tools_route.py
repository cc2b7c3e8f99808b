"""tools/route.py counts a command's route through camloc's files: checked on a written-out tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TREE = {
    "camloc/__init__.py": "",
    "camloc/__main__.py": "import sys\nfrom camloc.cli import main\nsys.exit(main(sys.argv[1:]))\n",
    "camloc/cli.py": ("def main(argv):\n    from camloc.commands import go, other\n    other.add_arguments()\n"
                      "    return go.run(argv)\n"),
    "camloc/commands/__init__.py": "",
    "camloc/commands/go.py": "def run(argv):\n    from camloc import feature\n    return feature.run(len(argv))\n",
    "camloc/commands/other.py": "def add_arguments():\n    from camloc import feature\n    return feature.step(0)\n",
    "camloc/feature.py": ("from camloc.low import walk, twice\n\n\ndef run(n):\n    return walk(step, n) + twice(n)\n\n\n"
                          "def step(i):\n    return i\n"),
    "camloc/low/__init__.py": "from camloc.low.core import walk, twice\n",
    "camloc/low/core.py": ("def walk(fn, n):\n    return sum(fn(i) for i in range(n))\n\n\n"
                           "def twice(n):\n    return _double(n)\n\n\ndef _double(n):\n    return 2 * n\n"),
}


def test_route_counts_files_edges_up_and_back_edges(tmp_path):
    for name, text in TREE.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "tools.route", "--src", str(tmp_path / "src"), "--list", "go", "a", "b"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    # cli hands the arguments to commands/go.py's run, the route's start; go -> feature (down), feature -> low.core (down), low.core -> feature
    # (the callback: up a floor, and back into a file still on the stack); low.core's own helper is no
    # edge; the <genexpr> in low.core calls feature.step, the same edge. cli's calls before run
    # (another command's add_arguments) are not the route.
    assert lines[:-1] == ["camloc.cli -> camloc.commands.go", "camloc.commands.go -> camloc.feature", "camloc.feature -> camloc.low.core",
                          "camloc.low.core -> camloc.feature  up back"]
    assert lines[-1].endswith("4 files, 4 edges, 1 up a floor, 1 back into a file on the stack")
