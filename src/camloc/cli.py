"""The ``camloc`` command: sub-commands are the modules of :mod:`camloc.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import camloc.commands as commands


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="camloc", description="Class Activation Mapping: classify and localize.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"camloc.commands.{info.name}")
        if not hasattr(mod, "NAME"):
            continue
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        modules[mod.NAME] = mod
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    mod = modules[args.command]
    try:
        check = getattr(mod, "check", None)
        if check is not None:  # option errors before run() imports anything heavy
            check(args)
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print("camloc: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        # Errors meant for the user are one line; the traceback is noise for them.
        print(f"camloc {args.command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
