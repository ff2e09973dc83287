"""The peer listener: one per local host:port, shared by every Transport of the process.

Several raft groups (cluster ids) in one process may share one peer URL
(DESIGN §2.2), so listeners live in a process-wide registry keyed by the
bound (host, port). A request is routed by X-Raft-Cluster-ID, then X-Raft-To,
to the Transport that registered that pair (etcd routes by member id behind
one listener in the same way). Every refusal is answered with an HTTP status
and a closed connection, and is logged once with the peer address; nothing
from a refused request reaches a node.

Threads: a listener runs on the loop of the Transport that bound it. A
Transport on another loop (one loop per raft group is allowed) gets its
messages through call_soon_threadsafe. When the last Transport on the
listener's loop stops while others remain, the listening socket is handed
(dup'ed, so the port never closes) to a remaining Transport's loop and the
connections accepted on the old loop are closed; their peers reconnect.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any

import httptools

from easyraft._core.types import CodecError, FrameTooLargeError
from easyraft._core.wire import FrameReader
from easyraft.transport import metrics
from easyraft.transport.protocol import (
    MAX_HEAD_SIZE,
    METRICS_PATH,
    PROTOCOL_VERSION,
    SNAPSHOT_PATH,
    STATUS_PATH,
    STREAM_PATH,
    UPGRADE_TOKEN,
    RequestError,
    TransportError,
    response,
)
from easyraft.transport.snapshot import SnapshotReader
from easyraft.transport.tls import TLSConfig

if TYPE_CHECKING:
    from easyraft.transport.transport import Transport

logger = logging.getLogger("easyraft.transport")

_registry: dict[tuple[str, int], Listener] = {}
# Guards _registry and every Listener.routes: transports on different loop
# threads may start and stop at the same time.
_registry_lock = threading.Lock()

_MAX_HEADERS = 64
# Read size for snapshot bodies (they go through httptools' chunk parser).
_SNAPSHOT_READ_SIZE = 256 * 1024
# Seconds a connection may take to send its request head.
HEAD_TIMEOUT = 10.0


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family = infos[0][0]
        return socket.create_server((host, port), family=family, backlog=1024)
    except OSError as e:
        raise TransportError(f"transport: cannot listen on {host}:{port}: {e}") from e


class Listener:
    """One bound socket and the transports (cluster_id, node_id) behind it."""

    def __init__(self, host: str, port: int, tls: TLSConfig | None, sock: socket.socket,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.ssl: ssl.SSLContext | None = tls.server_context() if tls else None
        self.sock = sock
        self.loop = loop
        self.server: asyncio.AbstractServer | None = None
        # cluster_id -> node_id -> Transport; mutated under _registry_lock.
        self.routes: dict[int, dict[int, Transport]] = {}
        self.conns: set[_ServerProtocol] = set()
        self.rejected: dict[int, int] = {}

    async def serve(self) -> None:
        self.server = await self.loop.create_server(
            lambda: _ServerProtocol(self), sock=self.sock, ssl=self.ssl, backlog=1024)

    def transports(self) -> list[Transport]:
        with _registry_lock:
            return [t for nodes in self.routes.values() for t in nodes.values()]

    def lookup(self, cluster_id: int, node_id: int) -> Transport:
        with _registry_lock:
            nodes = self.routes.get(cluster_id)
            if nodes is None:
                raise RequestError(412, f"cluster {cluster_id} is not served here")
            t = nodes.get(node_id)
        if t is None:
            raise RequestError(404, f"node {node_id} of cluster {cluster_id} is not served here")
        return t

    def status_json(self) -> bytes:
        servers = []
        for t in self.transports():
            try:
                st = t.handler.status()
            except Exception as e:  # noqa: BLE001 - a status page must not fail for one server
                st = {"error": repr(e)}
            servers.append({"cluster_id": t.cluster_id, "node_id": t.node_id,
                            "url": t.listen_url, "status": st, "peers": t.peer_status()})
        return json.dumps({"listen": f"{self.host}:{self.port}", "servers": servers},
                          default=str).encode()

    def close_connections(self, target: Transport | None = None) -> None:
        for c in list(self.conns):
            if target is None or c.target is target:
                c.abort()


async def attach(t: Transport, host: str, port: int, tls: TLSConfig | None) -> Listener:
    """Register t behind the listener for host:port, binding it if needed."""
    loop = asyncio.get_running_loop()
    new = False
    with _registry_lock:
        lst = _registry.get((host, port)) if port else None
        if lst is None:
            sock = _bind(host, port)
            port = sock.getsockname()[1]
            lst = Listener(host, port, tls, sock, loop)
            _registry[(host, port)] = lst
            new = True
        elif lst.tls != tls:
            raise TransportError(f"transport: {host}:{port} is already served with other "
                                 f"TLS settings")
        nodes = lst.routes.setdefault(t.cluster_id, {})
        if t.node_id in nodes:
            if new:
                del _registry[(host, port)]
                lst.sock.close()
            raise TransportError(f"transport: node {t.node_id} of cluster {t.cluster_id} "
                                 f"already listens on {host}:{port}")
        nodes[t.node_id] = t
    if new:
        try:
            await lst.serve()
        except BaseException:
            with _registry_lock:
                _registry.pop((host, port), None)
            lst.sock.close()
            raise
        logger.info("transport: listening on %s:%d%s", host, port, " (TLS)" if tls else "")
    return lst


async def detach(t: Transport, lst: Listener) -> None:
    """Unregister t; close the listener when it was the last, or hand it over."""
    handover: Transport | None = None
    close = False
    with _registry_lock:
        nodes = lst.routes.get(t.cluster_id, {})
        if nodes.get(t.node_id) is t:
            del nodes[t.node_id]
            if not nodes:
                del lst.routes[t.cluster_id]
        remaining = [u for ns in lst.routes.values() for u in ns.values()]
        if not remaining:
            _registry.pop((lst.host, lst.port), None)
            close = True
        elif all(u.loop is not lst.loop for u in remaining) and t.loop is lst.loop:
            handover = remaining[0]
    lst.close_connections(target=t)
    if close or handover is not None:
        new_sock = lst.sock.dup() if handover is not None else None
        if lst.server is not None:
            lst.server.close()
        lst.close_connections()
        if handover is not None and new_sock is not None:
            nxt = Listener(lst.host, lst.port, lst.tls, new_sock, handover.loop)
            nxt.rejected = lst.rejected
            with _registry_lock:
                nxt.routes = lst.routes
                _registry[(lst.host, lst.port)] = nxt
                for u in remaining:
                    u.listener = nxt
            handover.loop.call_soon_threadsafe(handover.loop.create_task, nxt.serve())
            logger.info("transport: listener %s:%d moved to another event loop",
                        lst.host, lst.port)
        else:
            logger.info("transport: closed listener %s:%d", lst.host, lst.port)


# Connection states of _ServerProtocol.
_HEAD, _STREAM, _SNAPSHOT, _WAIT, _DONE = range(5)


class _ServerProtocol(asyncio.BufferedProtocol):
    """One accepted connection: an HTTP/1.1 head, then a frame stream or a snapshot body.

    A BufferedProtocol so that, once upgraded, the loop reads straight into
    the stream's FrameReader and frames are decoded where they landed (no
    bytes object per read, no buffer concatenation). Before that, and for
    snapshot bodies, reads go to a scratch buffer and on to httptools.
    """

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.target: Transport | None = None
        self._tr: asyncio.Transport | None = None
        self._peer = "?"
        self._state = _HEAD
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._head_bytes = 0
        self._error: RequestError | None = None
        self._frm = 0
        self._to = 0
        # Reads before the upgrade land here (a head is at most MAX_HEAD_SIZE);
        # a snapshot request swaps in a larger one for its body.
        self._scratch = bytearray(MAX_HEAD_SIZE)
        self._head_timer: asyncio.TimerHandle | None = None
        self._reader: FrameReader | None = None     # set once the stream is upgraded
        self._stats: Any = None
        self._snap: SnapshotReader | None = None

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tr = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.listener.conns.add(self)
        # A client that never finishes its head must not hold the connection.
        self._head_timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT,
                                                                 self._head_timeout)

    def _head_timeout(self) -> None:
        if self._state == _HEAD:
            self._reject(RequestError(408, f"no complete request head in {HEAD_TIMEOUT} s"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.conns.discard(self)
        if self._head_timer is not None:
            self._head_timer.cancel()
        if self.target is not None:
            self.target.stream_closed(self._frm, self)
        if self._state == _SNAPSHOT and self.target is not None:
            self.target.stats_for(self._frm).snap_recv_failed += 1
            logger.warning("transport: snapshot from %s (node %d) cut off after %d bytes",
                           self._peer, self._frm, self._snap.compressed if self._snap else 0)
        self._state = _DONE
        self._snap = None
        self._reader = None

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._state == _STREAM and self._reader is not None:
            return self._reader.get_buffer()
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        if self._state == _STREAM and self._reader is not None:
            reader = self._reader
            try:
                msgs = reader.feed(nbytes)
                # The node may close this stream from process() (remove_peer).
                while msgs and self._state == _STREAM:
                    self._deliver(msgs)
                    msgs = reader.next_batch()
            except FrameTooLargeError as e:
                self._reject(RequestError(413, str(e)))
            except CodecError as e:
                self._reject(RequestError(400, str(e)))
            return
        self.data_received(bytes(memoryview(self._scratch)[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self._state not in (_HEAD, _SNAPSHOT):
            return      # after the request: ignore until we close
        if self._state == _HEAD:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            if self._error is None and self._state == _HEAD and self.target is not None:
                self._start_stream(data[e.args[0]:])
                return
            if self._error is None:
                self._error = RequestError(400, "unexpected Upgrade")
        except httptools.HttpParserCallbackError:
            pass        # raised by one of our callbacks: _error says why
        except httptools.HttpParserError as e:
            if self._error is None:
                self._error = RequestError(400, f"malformed HTTP request: {e}")
        if self._error is None and self._state == _HEAD and self._head_bytes > MAX_HEAD_SIZE:
            self._error = RequestError(431, f"request head exceeds {MAX_HEAD_SIZE} bytes")
        if self._error is not None:
            self._reject(self._error)

    # -- httptools callbacks -----------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= _MAX_HEADERS:
            self._error = RequestError(431, "too many headers")
            raise self._error
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        try:
            self._route()
        except RequestError as e:
            self._error = e
            raise

    def on_body(self, body: bytes) -> None:
        if self._state != _SNAPSHOT or self._snap is None:
            self._error = RequestError(400, "unexpected request body")
            raise self._error
        try:
            self._snap.feed(body)
        except RequestError as e:
            self._error = e
            raise

    def on_message_complete(self) -> None:
        if self._state == _SNAPSHOT and self._error is None:
            self._finish_snapshot()

    # -- routing -----------------------------------------------------------------

    def _route(self) -> None:
        method = self._parser.get_method()
        path = self._url.split(b"?", 1)[0].decode("latin-1")
        if path in (STATUS_PATH, METRICS_PATH):
            if method != b"GET":
                raise RequestError(405, f"{path} takes GET")
            if path == STATUS_PATH:
                self._respond(200, self.listener.status_json(), "application/json")
            else:
                body = metrics.render(self.listener.transports(), self.listener.rejected)
                self._respond(200, body.encode(), "text/plain; version=0.0.4")
            return
        if path not in (STREAM_PATH, SNAPSHOT_PATH):
            raise RequestError(404, f"no such path {path}")
        if method != b"POST":
            raise RequestError(405, f"{path} takes POST")
        cluster_id = self._number(b"x-raft-cluster-id")
        self._frm = self._number(b"x-raft-from")
        self._to = self._number(b"x-raft-to")
        version = self._number(b"x-raft-version")
        if version != PROTOCOL_VERSION:
            raise RequestError(400, f"unsupported protocol version {version} "
                                    f"(this node speaks {PROTOCOL_VERSION})")
        if self._frm == 0 or self._to == 0:
            raise RequestError(400, "node ids must not be 0")
        target = self.listener.lookup(cluster_id, self._to)
        if target.handler.is_removed(self._frm):
            raise RequestError(403, f"node {self._frm} was removed from cluster {cluster_id}")
        self.target = target
        self._stats = target.stats_for(self._frm)
        if path == STREAM_PATH:
            upgrade = self._headers.get(b"upgrade", b"")
            if not self._parser.should_upgrade() or upgrade.lower() != UPGRADE_TOKEN:
                raise RequestError(400, f"{STREAM_PATH} needs Connection: Upgrade and "
                                        f"Upgrade: {UPGRADE_TOKEN.decode()}")
        else:
            self._snap = SnapshotReader(target.max_frame, target.max_snapshot_size)
            self._scratch = bytearray(_SNAPSHOT_READ_SIZE)
            self._state = _SNAPSHOT

    def _number(self, name: bytes) -> int:
        raw = self._headers.get(name)
        if raw is None:
            raise RequestError(400, f"missing header {name.decode()}")
        if not raw.isdigit() or len(raw) > 20:
            raise RequestError(400, f"header {name.decode()} is not a decimal id: {raw!r}")
        v = int(raw)
        if v >= 1 << 64:
            raise RequestError(400, f"header {name.decode()} out of range")
        return v

    # -- stream ------------------------------------------------------------------

    def _start_stream(self, rest: bytes) -> None:
        assert self._tr is not None and self.target is not None
        self._state = _STREAM
        self._reader = FrameReader(self.target.max_frame, counters=self._stats.received,
                                   frm=self._frm, to=self._to)
        self._tr.write(response(101))
        self.target.stream_opened(self._frm, self)
        if rest:
            try:
                msgs = self._reader.push(rest)
            except FrameTooLargeError as e:
                self._reject(RequestError(413, str(e)))
                return
            except CodecError as e:
                self._reject(RequestError(400, str(e)))
                return
            if msgs:
                self._deliver(msgs)

    def _deliver(self, msgs: list[Any]) -> None:
        """Hand a batch (checked and counted by the FrameReader) to the node."""
        assert self.target is not None
        self.target.receive(self._frm, msgs, self._stats)

    # -- snapshot ----------------------------------------------------------------

    def _finish_snapshot(self) -> None:
        assert self._snap is not None and self.target is not None and self._tr is not None
        try:
            m = self._snap.finish()
        except RequestError as e:
            self._error = e
            return
        if m.frm != self._frm or m.to != self._to:
            self._error = RequestError(400, f"snapshot from {m.frm} to {m.to} sent as "
                                            f"{self._frm}->{self._to}")
            return
        self._state = _WAIT
        self._snap = None
        self._tr.pause_reading()
        asyncio.get_running_loop().create_task(self._deliver_snapshot(m))

    async def _deliver_snapshot(self, m: Any) -> None:
        target = self.target
        assert target is not None
        st = target.stats_for(self._frm)
        try:
            await target.receive_snapshot(m)
        except Exception:
            st.snap_recv_failed += 1
            logger.exception("transport: node %d of cluster %d failed to take the snapshot "
                             "from node %d", target.node_id, target.cluster_id, self._frm)
            self._respond(500, b"process_snapshot failed\n")
            return
        st.snap_recv_ok += 1
        logger.info("transport: received snapshot (index %d, %d bytes) from node %d at %s",
                    m.snapshot.metadata.index, len(m.snapshot.data), self._frm, self._peer)
        self._respond(204)

    # -- replies -----------------------------------------------------------------

    def _respond(self, status: int, body: bytes = b"",
                 content_type: str = "text/plain; charset=utf-8") -> None:
        self._state = _DONE
        if self._tr is not None and not self._tr.is_closing():
            self._tr.write(response(status, body, content_type))
            self._tr.close()

    def _reject(self, err: RequestError) -> None:
        """Refuse the request: count, log once, answer with the status, close."""
        if self._state == _DONE:
            return
        was_stream = self._state == _STREAM
        self.listener.rejected[err.status] = self.listener.rejected.get(err.status, 0) + 1
        logger.warning("transport: refused %s from %s: %s", "stream" if was_stream else "request",
                       self._peer, err)
        self._reader = None
        self._snap = None
        # After a 101 the server->client direction carries nothing but this
        # final status, so the dialer can log why its stream was closed.
        self._respond(err.status, (err.reason + "\n").encode())

    def abort(self) -> None:
        self._state = _DONE
        if self._tr is not None:
            self._tr.close()
