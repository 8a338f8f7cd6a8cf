"""The ``mastering`` command line.

Each subcommand lives with the code it drives; a module registers its parser through a
``register(subparsers)`` function, and this file only lists the modules (imported lazily so that
``mastering --help`` stays fast).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

# (module, help) pairs; each module defines register(subparsers) adding one or more subcommands.
_COMMAND_MODULES = [
    "mastering.data.cli",
    "listening_test.cli",
    "mastering.master",
]


def key_value(text: str) -> tuple[str, Any]:
    """argparse type for ``KEY=VALUE`` options: the value is read as JSON when it parses, else kept as text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mastering",
        description="Neural perceptual audio mastering and semantic EQ (auto-mastering compendium).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .io import AudioError

    try:
        return int(args.func(args) or 0)
    except AudioError as exc:
        print(f"mastering {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
