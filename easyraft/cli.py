"""The `easyraft` command (also `python -m easyraft`)."""
from __future__ import annotations

import argparse
import json
import sys
import urllib.request

from easyraft._version import __version__
from easyraft.storage.walcli import add_wal_commands


def _demo(args: argparse.Namespace) -> int:
    from easyraft import demo
    return demo.run()


def _kv(args: argparse.Namespace) -> int:
    from easyraft import kv
    return kv.run(args)


def _status(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/raft/status"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as r:
            print(json.dumps(json.loads(r.read()), indent=2))
    except (OSError, ValueError) as e:
        print(f"easyraft status: {url}: {e}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="easyraft", description=__doc__)
    parser.add_argument("--version", action="version", version=f"easyraft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("demo", help="run a local 3-node cluster, crash its leader, recover")
    p.set_defaults(func=_demo)
    p = sub.add_parser("kv", help="run one node of the replicated key-value store")
    from easyraft.kv import add_arguments
    add_arguments(p)
    p.set_defaults(func=_kv)
    p = sub.add_parser("status", help="print GET /raft/status of a peer listener")
    p.add_argument("url", help="a peer URL, e.g. http://127.0.0.1:9001")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(func=_status)
    add_wal_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)
