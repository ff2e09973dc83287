"""The `easyraft` command (also `python -m easyraft`)."""
from __future__ import annotations

import argparse
import sys

from easyraft._version import __version__
from easyraft.storage.walcli import add_wal_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="easyraft", description=__doc__)
    parser.add_argument("--version", action="version", version=f"easyraft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_wal_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)
