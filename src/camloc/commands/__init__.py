"""CLI sub-commands, one module each.

A module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
:mod:`camloc.cli` finds them all, so adding a command touches no other file.
"""
