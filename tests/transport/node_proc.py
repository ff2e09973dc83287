"""A transport in its own process, driven by JSON lines on stdin (tests only).

Every command line {"cmd": name, ...} gets one reply line {"reply": name, ...}
on stdout. The handler records what arrived so the test can poll for it:
per (sender, type) counts, whether each sender's MsgHeartbeat/MsgApp indexes
arrived in increasing order, snapshots (size + CRC-32), and the reports.
The event loop is asyncio or uvloop, from EASYRAFT_TEST_LOOP.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import zlib
from typing import Any

from easyraft._core.types import ConfState, Entry, Message, MsgType, Snapshot, SnapshotMetadata

from easyraft.transport import TLSConfig, Transport


def rss_kib() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in KiB, from /proc."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def snapshot_data(size: int) -> bytes:
    # Half random, half repetitive: lz4 finds both incompressible and
    # compressible blocks, as in a real state machine dump.
    block = os.urandom(1 << 16) + b"easyraft" * (1 << 13)
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]


class Handler:
    def __init__(self, cluster_id: int, node_id: int, fail_snapshot: bool) -> None:
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.fail_snapshot = fail_snapshot
        self.counts: dict[str, int] = {}
        self.last_index: dict[int, int] = {}
        self.in_order = True
        self.unreachable: dict[int, int] = {}
        self.snap_reports: list[list[Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.removed: set[int] = set()

    def process(self, messages: list[Message]) -> None:
        for m in messages:
            key = f"{m.frm}:{MsgType(m.type).name}"
            self.counts[key] = self.counts.get(key, 0) + 1
            if m.index:
                if m.index <= self.last_index.get(m.frm, 0):
                    self.in_order = False
                self.last_index[m.frm] = m.index

    async def process_snapshot(self, message: Message) -> None:
        if self.fail_snapshot:
            raise RuntimeError("test: refusing snapshots")
        snap = message.snapshot
        assert snap is not None
        self.snapshots.append({"frm": message.frm, "index": snap.metadata.index,
                               "voters": list(snap.metadata.conf_state.voters),
                               "size": len(snap.data), "crc": zlib.crc32(snap.data)})

    def report_unreachable(self, peer_id: int) -> None:
        self.unreachable[peer_id] = self.unreachable.get(peer_id, 0) + 1

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        self.snap_reports.append([peer_id, ok])

    def is_removed(self, peer_id: int) -> bool:
        return peer_id in self.removed

    def status(self) -> dict[str, Any]:
        return {"id": self.node_id, "cluster_id": self.cluster_id}


class Node:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.h = Handler(args.cluster, args.id, args.fail_snapshot)
        self.h.removed = set(args.removed)
        tls = None
        if args.cert:
            tls = TLSConfig(args.cert, args.key, args.ca or None)
        self.t = Transport(self.h, args.listen, max_size_per_msg=args.max_size, tls=tls,
                           queue_size=args.queue_size, max_snapshot_size=args.max_snapshot,
                           backoff_max=0.5)
        self.index = 0
        self.done = asyncio.Event()
        self.snapshot_sent: dict[str, Any] = {}

    def reply(self, cmd: str, **kw: Any) -> None:
        sys.stdout.write(json.dumps({"reply": cmd, **kw}) + "\n")
        sys.stdout.flush()

    def handle(self, line: str) -> None:
        req = json.loads(line)
        cmd = req.pop("cmd")
        out = getattr(self, "cmd_" + cmd)(**req) or {}
        self.reply(cmd, **out)

    def cmd_add_peer(self, id: int, url: str) -> None:
        self.t.add_peer(id, url)

    def cmd_remove_peer(self, id: int) -> None:
        self.t.remove_peer(id)

    def cmd_update_peer(self, id: int, url: str) -> None:
        self.t.update_peer(id, url)

    def cmd_set_removed(self, id: int) -> None:
        self.h.removed.add(id)

    def cmd_send(self, to: int, type: str = "MsgHeartbeat", count: int = 1,
                 entries: int = 0, size: int = 0) -> dict[str, Any]:
        msgs = []
        for _ in range(count):
            self.index += 1
            ents = [Entry(term=1, index=self.index, data=b"e" * size) for _ in range(entries)]
            msgs.append(Message(type=MsgType[type], to=to, frm=self.args.id, term=1,
                                index=self.index, entries=ents))
        self.t.send(msgs)
        return {"last_index": self.index}

    def cmd_snapshot(self, to: int, size: int) -> dict[str, Any]:
        data = snapshot_data(size)
        crc = zlib.crc32(data)
        m = Message(type=MsgType.MsgSnap, to=to, frm=self.args.id, term=2,
                    snapshot=Snapshot(data, SnapshotMetadata(index=1000, term=2,
                                                             conf_state=ConfState(voters=[1, 2, 3]))))
        del data        # the message now holds the only reference
        self.t.send([m])
        del m
        return {"crc": crc}

    def cmd_state(self) -> dict[str, Any]:
        rss, hwm = rss_kib()
        return {"counts": self.h.counts, "in_order": self.h.in_order,
                "unreachable": {str(k): v for k, v in self.h.unreachable.items()},
                "snap_reports": self.h.snap_reports, "snapshots": self.h.snapshots,
                "peers": self.t.peer_status(), "rss_kib": rss, "hwm_kib": hwm,
                "url": self.t.listen_url}

    def cmd_metrics(self) -> dict[str, Any]:
        return {"text": self.t.metrics_text()}

    def cmd_stop(self) -> None:
        self.done.set()

    async def run(self) -> None:
        await self.t.start()
        loop = asyncio.get_running_loop()

        def read_stdin() -> None:
            for line in sys.stdin:
                if line.strip():
                    loop.call_soon_threadsafe(self.handle, line)
            loop.call_soon_threadsafe(self.done.set)

        threading.Thread(target=read_stdin, daemon=True).start()
        self.reply("ready", url=self.t.listen_url, rss_kib=rss_kib()[0])
        await self.done.wait()
        await self.t.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", type=int, default=1)
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--listen", default="http://127.0.0.1:0")
    ap.add_argument("--max-size", type=int, default=1 << 20)
    ap.add_argument("--queue-size", type=int, default=4096)
    ap.add_argument("--max-snapshot", type=int, default=1 << 36)
    ap.add_argument("--removed", type=int, action="append", default=[])
    ap.add_argument("--fail-snapshot", action="store_true")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    if os.environ.get("EASYRAFT_TEST_LOOP", "asyncio") == "uvloop":
        import uvloop
        uvloop.install()
    asyncio.run(Node(args).run())


if __name__ == "__main__":
    main()
