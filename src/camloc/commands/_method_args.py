"""``--method NAME`` and ``--method-option KEY=VALUE`` for the commands that make maps, checked
torch-free against the registry's names (:mod:`camloc.method_names`)."""

from __future__ import annotations

import argparse


def add_method_arguments(p: argparse.ArgumentParser, default: str = "cam") -> None:
    from camloc.method_names import NAMES

    p.add_argument("--method", default=default, metavar="NAME",
                   help=f"map method (default {default}): {', '.join(NAMES)}; cam needs a GAP + linear head and "
                   "runs in one forward pass, the others also explain nets whose head CAM refuses (docs/methods.md)")
    p.add_argument("--method-option", action="append", default=None, metavar="KEY=VALUE",
                   help="an option of the method, repeatable: layer=layer4, layers=layer3,layer4, n=8, sigma=0.2, "
                   "alpha=0.6, seed=1 ... (each method's options: docs/methods.md)")


def check_method_arguments(args: argparse.Namespace, command: str) -> dict[str, object]:
    """The parsed options; one-line errors for an unknown name or a malformed option. Sets
    ``args.method_options``."""
    from camloc.errors import MethodError
    from camloc.method_names import check_method_name, parse_method_options

    if args.method == "all":
        raise MethodError(f"--method all: camloc {command} runs one method; compare several with camloc compare")
    check_method_name(args.method)
    options = parse_method_options(args.method_option)
    if args.method == "cam" and options:
        raise MethodError(f"--method-option {next(iter(options))}: cam takes no options")
    args.method_options = options
    return options


def method_list(text: str) -> list[str]:
    """``all`` -> every registered name; ``a,b`` -> those, each checked (torch-free)."""
    from camloc.method_names import NAMES, check_method_name

    if text == "all":
        return list(NAMES)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError("--method: expected a method name, a comma list or all")
    return [check_method_name(n) for n in names]
