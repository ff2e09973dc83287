"""Peer transport: HTTP/1.1 streams between raft nodes (DESIGN §6, etcd's rafthttp).

API (used by the node layer; everything but start/stop runs on the node's loop)::

    class RaftHandler(Protocol):            # what a node provides
        cluster_id: int; node_id: int
        def process(self, messages: list[Message]) -> None
        async def process_snapshot(self, message: Message) -> None
        def report_unreachable(self, peer_id: int) -> None
        def report_snapshot(self, peer_id: int, ok: bool) -> None
        def is_removed(self, peer_id: int) -> bool
        def status(self) -> dict

    t = Transport(handler, "http://127.0.0.1:9001", max_size_per_msg=1 << 20,
                  tls=None, queue_size=4096, max_frame=None, max_snapshot_size=1 << 36,
                  dial_timeout=5.0, backoff_min=0.05, backoff_max=2.0,
                  snapshot_chunk_size=1 << 20)
    await t.start(); await t.stop()         # start binds or joins the host:port listener
    t.add_peer(2, url)                      # an existing id gets the new url
    t.update_peer(2, url)                   # TransportError if 2 is unknown
    t.remove_peer(2)                        # also closes 2's inbound streams
    t.send(messages)                        # non-blocking, routes by m.to; MsgSnap on
                                            # its own request, then report_snapshot
    t.peer_status() -> [{"id", "url", "reachable", "active", "error"}]
    t.listen_url                            # with the bound port once started
    t.metrics_text()                        # this transport's Prometheus text
    await t.peers[2].wait_writable()        # for bulk producers only (benchmarks)

Delivery is best effort, as raft expects: a message that cannot be queued
(queue full, or the peer in backoff after a failed dial) is dropped and
report_unreachable(peer) is called; messages queued while a dial is in
progress are sent once it succeeds.

Wire format (protocol version 1):

- Stream: the dialer sends ``POST /raft/stream HTTP/1.1`` with
  ``X-Raft-Cluster-ID``, ``X-Raft-From``, ``X-Raft-To``, ``X-Raft-Version: 1``
  (decimal) and ``Connection: Upgrade``, ``Upgrade: easyraft-stream/1``. The
  listener answers ``101 Switching Protocols``; from then on the dialer sends
  frames, ``u32 little-endian length | codec-encoded Message``, and the
  listener sends nothing except, on a protocol error, one final HTTP status
  (400 or 413) before it closes. Each node dials its own stream to each peer.
- Snapshot: ``POST /raft/snapshot`` with the same X-Raft headers and a chunked
  body: one LZ4 frame of ``u32 n | MsgSnap without data | u64 size | data``;
  ``204`` once the receiver's process_snapshot() returned, ``500`` if it raised.
- Refusals (logged once with the peer address, then the connection closes):
  412 unknown cluster id, 404 unknown target node, 403 sender removed,
  400 malformed request or frame, 413 frame or snapshot over the limit,
  431 head too large, 405 wrong method, 408 no complete head within 10 s.
- ``GET /raft/status`` (JSON of every server behind the listener) and
  ``GET /metrics`` (Prometheus text) on the same port.
"""
from easyraft.transport.protocol import PROTOCOL_VERSION, TransportError
from easyraft.transport.tls import TLSConfig
from easyraft.transport.transport import RaftHandler, Transport

__all__ = ["PROTOCOL_VERSION", "RaftHandler", "TLSConfig", "Transport", "TransportError"]
