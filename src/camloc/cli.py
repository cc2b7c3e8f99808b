"""The ``camloc`` command: sub-commands are the modules of :mod:`camloc.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

import camloc.commands as commands
from camloc.errors import one_line


def _version() -> str:
    from camloc._version import __version__

    return __version__


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="camloc", description="Class Activation Mapping: classify and localize.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error, not only its one-line message")
    parser.add_argument("--version", action="version", version=f"camloc {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"camloc.commands.{info.name}")
        if not hasattr(mod, "NAME"):
            continue
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error, not only its one-line message")
        modules[mod.NAME] = mod
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    mod = modules[args.command]
    checking = True
    try:
        check = getattr(mod, "check", None)
        if check is not None:  # option errors before run() imports anything heavy
            check(args)
        checking = False
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("camloc: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        # Errors meant for the user (camloc's own, any from the option checks, files) are one
        # line; a bug (a shape mismatch inside PyTorch, ...) keeps its traceback.
        from camloc.errors import is_user_error

        if not (checking and isinstance(err, ValueError)) and not is_user_error(err):
            raise
        if args.debug:
            traceback.print_exc()
        print(f"camloc {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
