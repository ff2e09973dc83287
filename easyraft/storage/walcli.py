"""`easyraft wal verify|dump|repair DIR`: operator tools for a WAL directory.

verify and dump only read (no lock: they can look at a live node's WAL,
whose tail may then be mid-write). repair takes the lock and changes
nothing unless given --truncate-torn-tail, and even then only a torn tail:
mid-log corruption needs a person, not a truncation.
"""
from __future__ import annotations

import argparse
import os
import sys

from easyraft.errors import CorruptWALError, WALLockedError
from easyraft.storage import wal


def add_wal_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `wal` command group on the top-level subparsers."""
    p = subparsers.add_parser("wal", help="verify, dump or repair a write-ahead log directory")
    sub = p.add_subparsers(dest="wal_command", metavar="WAL_COMMAND", required=True)
    v = sub.add_parser("verify",
                       help="check every record; exit 1 on corruption (names file and offset)")
    v.add_argument("dir")
    v.set_defaults(func=cmd_verify)
    d = sub.add_parser("dump", help="print every record: entries, hard states, snapshot markers")
    d.add_argument("dir")
    d.add_argument("--bytes", type=int, default=16, metavar="N",
                   help="how many leading bytes of each payload to show (default 16)")
    d.set_defaults(func=cmd_dump)
    r = sub.add_parser("repair", help="discard a torn tail (only with --truncate-torn-tail)")
    r.add_argument("dir")
    r.add_argument("--truncate-torn-tail", action="store_true",
                   help="zero-fill the torn tail of the last segment "
                        "(writes that were never synced)")
    r.set_defaults(func=cmd_repair)


def _need_wal(dirpath: str) -> bool:
    if not wal.exists(dirpath):
        print(f"error: no WAL segments in {dirpath}", file=sys.stderr)
        return False
    return True


def cmd_verify(args: argparse.Namespace) -> int:
    if not _need_wal(args.dir):
        return 2
    rep = wal.verify(args.dir)
    if rep.corrupt is not None:
        print(f"corrupt: {rep.corrupt.file} offset {rep.corrupt.offset}: {rep.corrupt.reason}")
        return 1
    hs = rep.hard_state
    span = f"index {rep.first_index}..{rep.last_index}" if rep.entries else "no entries"
    print(f"ok: {len(rep.segments)} segment(s), {rep.records} records, {rep.entries} entries "
          f"({span}), hard state term={hs.term} vote={hs.vote} commit={hs.commit}, "
          f"snapshot markers {[(i, t) for i, t in rep.snapshots]}")
    if rep.torn is not None:
        print(f"torn tail: {rep.torn.file} offset {rep.torn.offset}: {rep.torn.reason} "
              f"(never synced; opening the WAL or `easyraft wal repair --truncate-torn-tail` "
              f"discards it)")
    return 0


def _preview(data: bytes, n: int) -> str:
    return repr(data[:n]) + ("..." if len(data) > n else "")


def cmd_dump(args: argparse.Namespace) -> int:
    if not _need_wal(args.dir):
        return 2
    current = None
    try:
        for rec in wal.dump(args.dir):
            if rec.file != current:
                current = rec.file
                print(os.path.basename(current))
            v = rec.value
            if rec.type == "entry":
                kind = "conf-change" if v.type == 1 else "normal"
                line = (f"index={v.index} term={v.term} type={kind} size={len(v.data)} "
                        f"data={_preview(v.data, args.bytes)}")
            elif rec.type == "state":
                line = f"term={v.term} vote={v.vote} commit={v.commit}"
            elif rec.type == "snapshot":
                line = f"index={v[0]} term={v[1]}"
            elif rec.type == "crc":
                line = f"chain={v:#010x}"
            elif rec.type == "metadata":
                line = f"size={len(v)} data={_preview(v, args.bytes)}"
            else:
                line = f"{v} (never synced; discarded on open)"
            print(f"  @{rec.offset:<10d} {rec.type:<9s} {line}")
    except CorruptWALError as exc:
        print(f"corrupt: {exc.file} offset {exc.offset}: {exc.reason}")
        return 1
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    if not _need_wal(args.dir):
        return 2
    if not args.truncate_torn_tail:
        rep = wal.verify(args.dir)
        if rep.corrupt is not None:
            print(f"corrupt: {rep.corrupt.file} offset {rep.corrupt.offset}: {rep.corrupt.reason}; "
                  f"this is not a torn tail and will not be repaired")
            return 1
        if rep.torn is None:
            print("nothing to repair")
            return 0
        print(f"torn tail: {rep.torn.file} offset {rep.torn.offset}: {rep.torn.reason}; "
              f"rerun with --truncate-torn-tail to discard it")
        return 1
    try:
        fixed = wal.repair(args.dir)
    except CorruptWALError as exc:
        print(f"refusing: {exc.file} offset {exc.offset}: {exc.reason} is mid-log corruption, "
              f"not a torn tail")
        return 1
    except WALLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if fixed is None:
        print("nothing to repair")
    else:
        print(f"truncated torn tail: {fixed.file} offset {fixed.offset}: {fixed.reason}")
    return 0
