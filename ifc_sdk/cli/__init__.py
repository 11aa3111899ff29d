"""The ``ifc-sdk`` command line.

Each module of this package defines one command group with ``register(subparsers)``, which adds its parser(s)
and sets ``func`` (called with the parsed namespace, returning an exit code). Modules are discovered, so a new
command is a new file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ifc_sdk import __version__
from ifc_sdk.errors import IFCError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ifc-sdk", description="Video instance segmentation and tracking with IFC."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except IFCError as exc:
        print(f"ifc-sdk {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a filesystem failure no writer turned into an IFCError: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ifc-sdk {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
