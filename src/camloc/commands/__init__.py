"""CLI sub-commands, one module each.

A module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
:mod:`camloc.cli` finds them all, so adding a command touches no other file. An optional
``check(args)`` raises ``ValueError`` for bad options before ``run``. The module's top level,
``add_arguments`` and ``check`` import neither torch nor torchvision (``camloc --help``, an option
error and ``evaluate-maps`` start without them; tests/test_startup.py); ``run`` imports what it needs.
"""
