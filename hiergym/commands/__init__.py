"""Subcommands of ``hiergym`` that live in their own modules.

Every module in this package that defines ``add_command(sub)`` adds its subcommand to the parser:
``sub`` is the ``argparse`` subparsers object, and the function calls ``sub.add_parser(...)`` and
``set_defaults(fn=...)`` where ``fn(args) -> int`` runs the command. A command module imports its
heavy dependencies inside ``fn``, so ``hiergym --help`` stays fast and works without the extras.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def add_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add the subcommand of every module of this package (in name order); return their names."""
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        add = getattr(module, "add_command", None)
        if add is None:
            raise ImportError(
                f"{module.__name__} is in hiergym.commands but has no add_command(sub)"
            )
        add(sub)
        names.append(info.name)
    return names
