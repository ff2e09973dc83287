"""Transport: what a Node uses to talk to its peers (etcd: rafthttp.Transport).

A Transport belongs to one node of one cluster and to one event loop (the
node's). It joins the shared listener of its URL for inbound traffic and owns
one Peer per remote node for outbound traffic. All methods except start/stop
are synchronous and must be called on the transport's loop thread.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any, Protocol, runtime_checkable

from easyraft._core.types import Message
from easyraft._core.wire import group_by_to, single_destination
from easyraft.transport import server
from easyraft.transport.metrics import PeerStats, render
from easyraft.transport.peer import Peer
from easyraft.transport.protocol import FRAME_HEADROOM, TransportError, parse_url
from easyraft.transport.snapshot import CHUNK_SIZE
from easyraft.transport.tls import TLSConfig

logger = logging.getLogger("easyraft.transport")


@runtime_checkable
class RaftHandler(Protocol):
    """What a node gives its transport.

    process() and the report_* calls run on the node's loop thread; they must
    be cheap and must not raise (an exception is logged and swallowed).
    is_removed() and status() are called on the listener's loop thread, which
    is another thread when this node's loop is not the one that bound the
    shared listener: keep them to reading plain attributes.
    """

    cluster_id: int
    node_id: int

    def process(self, messages: list[Message]) -> None:
        """Take decoded messages addressed to this node (never MsgSnap)."""

    async def process_snapshot(self, message: Message) -> None:
        """Take a complete MsgSnap; the sender learns of success when this returns."""

    def report_unreachable(self, peer_id: int) -> None:
        """A message to peer_id was dropped or its stream went down."""

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        """A snapshot sent to peer_id was applied there (ok) or failed."""

    def is_removed(self, peer_id: int) -> bool:
        """Whether peer_id was removed from the cluster (its requests get 403)."""

    def status(self) -> dict[str, Any]:
        """This node's status, shown by GET /raft/status."""


class Transport:
    """Peer messaging for one node: a shared listener plus one stream per peer.

    :param handler: the node (see RaftHandler).
    :param listen_url: this node's peer URL, http:// or https://; port 0 binds
        a free port (listen_url then reports it after start()).
    :param max_size_per_msg: the core's max_size_per_msg; the largest frame
        accepted is this plus FRAME_HEADROOM unless max_frame is given.
    :param tls: certificates for https:// URLs (listener and dialers).
    :param queue_size: messages queued per peer before drops.
    :param max_frame: explicit frame limit in bytes (overrides the default).
    :param max_snapshot_size: largest snapshot accepted, in bytes.
    :param dial_timeout: seconds allowed for connect + handshake.
    :param backoff_min, backoff_max: reconnect delay bounds in seconds; the
        delay doubles per failure and is jittered to [delay/2, delay].
    :param snapshot_chunk_size: raw bytes compressed per snapshot chunk.
    """

    def __init__(self, handler: RaftHandler, listen_url: str, *, max_size_per_msg: int,
                 tls: TLSConfig | None = None, queue_size: int = 4096,
                 max_frame: int | None = None, max_snapshot_size: int = 1 << 36,
                 dial_timeout: float = 5.0, backoff_min: float = 0.05,
                 backoff_max: float = 2.0, snapshot_chunk_size: int = CHUNK_SIZE) -> None:
        scheme, host, port = parse_url(listen_url)
        if scheme == "https" and tls is None:
            raise TransportError(f"transport: {listen_url} is https but no TLS config was given")
        if max_size_per_msg <= 0 or queue_size <= 0:
            raise TransportError("transport: max_size_per_msg and queue_size must be positive")
        self.handler = handler
        self.cluster_id = int(handler.cluster_id)
        self.node_id = int(handler.node_id)
        self._scheme, self._host, self._port = scheme, host, port
        self.tls = tls if scheme == "https" else None
        self.client_ssl: ssl.SSLContext | None = tls.client_context() if tls else None
        self.max_size_per_msg = max_size_per_msg
        self.max_frame = max_frame if max_frame is not None else max_size_per_msg + FRAME_HEADROOM
        self.max_snapshot_size = max_snapshot_size
        self.queue_size = queue_size
        self.dial_timeout = dial_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.snapshot_chunk_size = snapshot_chunk_size
        self.peers: dict[int, Peer] = {}
        self.stats: dict[int, PeerStats] = {}
        self.listener: server.Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Inbound stream connections by sender id, closed by remove_peer().
        self._inbound: dict[int, set[Any]] = {}

    # -- lifecycle ---------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise TransportError("transport: not started")
        return self._loop

    @property
    def listen_url(self) -> str:
        """This node's URL (with the bound port once started)."""
        port = self.listener.port if self.listener is not None else self._port
        return f"{self._scheme}://{self._host}:{port}"

    async def start(self) -> None:
        """Bind, or join, the listener of listen_url's host:port on this loop."""
        if self._loop is not None:
            raise TransportError("transport: already started")
        self._loop = asyncio.get_running_loop()
        try:
            self.listener = await server.attach(self, self._host, self._port, self.tls)
        except BaseException:
            self._loop = None
            raise

    async def stop(self) -> None:
        """Close every peer stream, leave the listener; idempotent."""
        if self._loop is None:
            return
        peers, self.peers = list(self.peers.values()), {}
        await asyncio.gather(*(p.stop() for p in peers), return_exceptions=True)
        if self.listener is not None:
            await server.detach(self, self.listener)
        self._loop = None

    # -- membership ----------------------------------------------------------------

    def add_peer(self, peer_id: int, url: str) -> None:
        """Start streaming to peer_id at url (an existing peer gets the new url)."""
        if peer_id == self.node_id or peer_id <= 0:
            raise TransportError(f"transport: bad peer id {peer_id}")
        p = self.peers.get(peer_id)
        if p is not None:
            if p.url != url:
                p.update_url(url)
            return
        self.peers[peer_id] = Peer(self, peer_id, url)

    def remove_peer(self, peer_id: int) -> None:
        """Stop talking to peer_id and close its inbound streams."""
        p = self.peers.pop(peer_id, None)
        if p is not None:
            self.loop.create_task(p.stop())
        # A copy: the listener's thread may discard from the set meanwhile.
        conns = list(self._inbound.pop(peer_id, ()))
        lst = self.listener
        for c in conns:
            if lst is not None and lst.loop is not self.loop:
                lst.loop.call_soon_threadsafe(c.abort)
            else:
                c.abort()

    def update_peer(self, peer_id: int, url: str) -> None:
        """Send to peer_id at its new url from now on (RAFT_ChangeServer)."""
        p = self.peers.get(peer_id)
        if p is None:
            raise TransportError(f"transport: unknown peer {peer_id}")
        p.update_url(url)

    # -- outbound ------------------------------------------------------------------

    def send(self, messages: list[Message]) -> None:
        """Queue messages by m.to; MsgSnap goes on its own request. Never blocks."""
        to = single_destination(messages)
        if to:
            p = self.peers.get(to)
            if p is None:
                self._unknown(to, len(messages))
            else:
                p.send(messages)
            return
        groups, snaps = group_by_to(messages)
        for m in snaps:
            p = self.peers.get(m.to)
            if p is None:
                self._unknown(m.to, 1)
                self.report_snapshot(m.to, False)
            else:
                p.send_snapshot(m)
        for to, msgs in groups.items():
            p = self.peers.get(to)
            if p is None:
                self._unknown(to, len(msgs))
            else:
                p.send(msgs)

    def _unknown(self, to: int, n: int) -> None:
        self.stats_for(to).dropped += n
        logger.debug("transport: dropped %d messages to unknown peer %d", n, to)
        self.report_unreachable(to)

    def report_unreachable(self, peer_id: int) -> None:
        try:
            self.handler.report_unreachable(peer_id)
        except Exception:
            logger.exception("transport: report_unreachable(%d) raised", peer_id)

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        try:
            self.handler.report_snapshot(peer_id, ok)
        except Exception:
            logger.exception("transport: report_snapshot(%d) raised", peer_id)

    # -- inbound (called by the listener, possibly on its own loop) ----------------

    def stats_for(self, peer_id: int) -> PeerStats:
        st = self.stats.get(peer_id)
        if st is None:
            st = self.stats[peer_id] = PeerStats()
        return st

    def receive(self, frm: int, messages: list[Message], stats: PeerStats) -> None:
        stats.last_heard = time.monotonic()
        lst = self.listener
        if lst is None or lst.loop is self._loop:
            self._process(messages)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._process, messages)

    def _process(self, messages: list[Message]) -> None:
        try:
            self.handler.process(messages)
        except Exception:
            logger.exception("transport: node %d: process() raised", self.node_id)

    async def receive_snapshot(self, m: Message) -> None:
        self.stats_for(m.frm).last_heard = time.monotonic()
        lst = self.listener
        if lst is None or lst.loop is self._loop or self._loop is None:
            await self.handler.process_snapshot(m)
        else:
            fut = asyncio.run_coroutine_threadsafe(self.handler.process_snapshot(m), self._loop)
            await asyncio.wrap_future(fut)

    def stream_opened(self, frm: int, conn: Any) -> None:
        self._inbound.setdefault(frm, set()).add(conn)

    def stream_closed(self, frm: int, conn: Any) -> None:
        conns = self._inbound.get(frm)
        if conns is not None:
            conns.discard(conn)

    # -- status ----------------------------------------------------------------------

    def peer_status(self) -> list[dict[str, Any]]:
        """Per peer: id, url, reachable, active (seconds since heard from, -1 never), error."""
        out = []
        for pid, p in sorted(self.peers.items()):
            out.append({"id": pid, "url": p.url, "reachable": p.reachable,
                        "active": self.stats_for(pid).active(), "error": p.last_error})
        return out

    def metrics_text(self) -> str:
        """The Prometheus text of this transport alone (GET /metrics shows all)."""
        return render([self], {})
