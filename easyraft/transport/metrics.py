"""Per-peer counters and their Prometheus text rendering (GET /metrics).

Per-type counters are compiled Counters objects (C arrays indexed by
MsgType) so that a whole batch is counted without a Python loop per message;
rendering walks them only when /metrics is scraped.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from easyraft._core.types import MsgType
from easyraft._core.wire import Counters

if TYPE_CHECKING:
    from easyraft.transport.transport import Transport

_TYPE_NAMES = {int(t): t.name for t in MsgType}


class PeerStats:
    """What one local node counted about one remote peer."""

    __slots__ = (
        "dial_failures",
        "dropped",
        "last_heard",
        "received",
        "reconnects",
        "sent",
        "snap_recv_failed",
        "snap_recv_ok",
        "snap_sent_failed",
        "snap_sent_ok",
    )

    def __init__(self) -> None:
        self.sent = Counters()
        self.received = Counters()
        self.dropped = 0
        self.reconnects = 0
        self.dial_failures = 0
        self.snap_sent_ok = 0
        self.snap_sent_failed = 0
        self.snap_recv_ok = 0
        self.snap_recv_failed = 0
        # time.monotonic() of the last message from this peer; 0.0 = never.
        self.last_heard = 0.0

    def active(self) -> float:
        """Seconds since this peer was last heard from, -1 if never."""
        if not self.last_heard:
            return -1
        return round(time.monotonic() - self.last_heard, 3)


_HELP = [
    ("easyraft_transport_messages_sent_total", "counter", "Messages written to a peer stream."),
    ("easyraft_transport_bytes_sent_total", "counter", "Framed bytes written to a peer stream."),
    ("easyraft_transport_messages_received_total", "counter", "Messages received from a peer."),
    ("easyraft_transport_bytes_received_total", "counter", "Framed bytes received from a peer."),
    ("easyraft_transport_dropped_messages_total", "counter",
     "Messages dropped because the peer's queue was full or it was unreachable."),
    ("easyraft_transport_reconnects_total", "counter", "Stream connections re-established."),
    ("easyraft_transport_dial_failures_total", "counter", "Failed attempts to open a stream."),
    ("easyraft_transport_snapshots_sent_total", "counter", "Snapshot transfers sent, by result."),
    ("easyraft_transport_snapshots_received_total", "counter",
     "Snapshot transfers received, by result."),
    ("easyraft_transport_peer_reachable", "gauge", "1 when the outbound stream is up."),
    ("easyraft_transport_rejected_requests_total", "counter",
     "Requests refused by the listener, by HTTP status."),
]


def render(transports: Iterable[Transport], rejected: dict[int, int]) -> str:
    """Return the Prometheus text exposition of these transports' counters."""
    rows: dict[str, list[str]] = {name: [] for name, _, _ in _HELP}
    for t in transports:
        base = f'cluster="{t.cluster_id}",node="{t.node_id}"'
        reachable = {p["id"]: p["reachable"] for p in t.peer_status()}
        for peer_id, st in sorted(t.stats.items()):
            lab = f'{base},peer="{peer_id}"'
            for direction, counters in (("sent", st.sent), ("received", st.received)):
                for typ, msgs, nbytes in counters.rows():
                    tl = f'{lab},type="{_TYPE_NAMES.get(typ, typ)}"'
                    rows[f"easyraft_transport_messages_{direction}_total"].append(
                        f"{{{tl}}} {msgs}")
                    rows[f"easyraft_transport_bytes_{direction}_total"].append(
                        f"{{{tl}}} {nbytes}")
            rows["easyraft_transport_dropped_messages_total"].append(f"{{{lab}}} {st.dropped}")
            rows["easyraft_transport_reconnects_total"].append(f"{{{lab}}} {st.reconnects}")
            rows["easyraft_transport_dial_failures_total"].append(
                f"{{{lab}}} {st.dial_failures}")
            for res, v in (("ok", st.snap_sent_ok), ("failed", st.snap_sent_failed)):
                rows["easyraft_transport_snapshots_sent_total"].append(
                    f'{{{lab},result="{res}"}} {v}')
            for res, v in (("ok", st.snap_recv_ok), ("failed", st.snap_recv_failed)):
                rows["easyraft_transport_snapshots_received_total"].append(
                    f'{{{lab},result="{res}"}} {v}')
            if peer_id in reachable:
                rows["easyraft_transport_peer_reachable"].append(
                    f"{{{lab}}} {int(reachable[peer_id])}")
    for code, v in sorted(rejected.items()):
        rows["easyraft_transport_rejected_requests_total"].append(f'{{code="{code}"}} {v}')
    out = []
    for name, kind, text in _HELP:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(name + row for row in rows[name])
    return "\n".join(out) + "\n"
