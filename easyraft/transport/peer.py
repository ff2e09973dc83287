"""One remote peer: its outbound message stream and its snapshot sender.

etcd's rafthttp gives each peer a long-lived stream writer fed by a bounded
channel and a separate snapshot sender; this is the same on asyncio
Protocols. Invariants:

- send() never blocks and never awaits: messages are encoded at once into
  the peer's bounded FrameQueue, flushed once per loop iteration as one write.
- A message that cannot be queued (queue full, or the link is down and in
  backoff) is dropped, counted, and the node is told report_unreachable(),
  once per send() call; raft retransmits what matters.
- While a dial is in progress messages queue (a restart of a healthy peer
  loses nothing); once a dial failed, messages are dropped until one succeeds,
  as etcd does, so a dead peer cannot hold stale messages or memory.
- Writes stop while the socket buffer is above its high-water mark
  (pause_writing) and resume on resume_writing, so a slow peer costs at most
  queue_size messages and one socket buffer.
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
from typing import TYPE_CHECKING, Any, cast

import httptools

from easyraft._core.types import Message
from easyraft._core.wire import FrameQueue
from easyraft.transport.protocol import (
    SNAPSHOT_PATH,
    STREAM_PATH,
    TransportError,
    parse_url,
    request_head,
)
from easyraft.transport.snapshot import compressed_chunks

if TYPE_CHECKING:
    from easyraft.transport.transport import Transport

logger = logging.getLogger("easyraft.transport")

_CONNECTING, _ACTIVE, _BACKOFF, _STOPPED = "connecting", "active", "backoff", "stopped"

# A peer's reply body (an error reason) is read up to this many bytes.
_MAX_REPLY = 4096


class _Reply:
    """httptools callbacks collecting one HTTP response (status and a short body)."""

    def __init__(self) -> None:
        self.status = 0
        self.body = bytearray()
        self.complete = False

    def on_body(self, body: bytes) -> None:
        if len(self.body) < _MAX_REPLY:
            self.body += body[:_MAX_REPLY - len(self.body)]

    def on_message_complete(self) -> None:
        self.complete = True

    def text(self) -> str:
        return f"{self.status} {bytes(self.body).decode('utf-8', 'replace').strip()}"


class _StreamClient(asyncio.Protocol):
    """Our side of an outbound stream: the upgrade handshake, then writes only."""

    def __init__(self, peer: Peer, head: bytes) -> None:
        loop = peer.t.loop
        self.peer = peer
        self.tr: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self._head = head
        self._reply = _Reply()
        self._parser = httptools.HttpResponseParser(self._reply)
        self._upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, don't check.
        self.tr = cast(asyncio.Transport, transport)
        self.tr.write(self._head)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            if not self._upgraded and self._parser.get_status_code() == 101:
                self._upgraded = True
                self._reply = _Reply()
                self._parser = httptools.HttpResponseParser(self._reply)
                if not self.handshake.done():
                    self.handshake.set_result(None)
                rest = data[e.args[0]:]
                if rest:
                    self.data_received(rest)
                return
        except httptools.HttpParserError as e:
            self._fail(f"malformed reply: {e}")
            return
        self._reply.status = self._parser.get_status_code()
        if self._reply.complete and self._reply.status != 101:
            # Before the upgrade: a refusal. After it: the peer's last word
            # before it closes the stream (it only speaks to say why).
            self._fail(self._reply.text())

    def _fail(self, reason: str) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(TransportError(
                f"transport: peer {self.peer.id} at {self.peer.url} refused the stream: {reason}"))
        if not self.closed.done():
            self.closed.set_result(reason)
        if self.tr is not None:
            self.tr.close()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = str(exc) if exc else "connection closed by peer"
        if not self.handshake.done():
            self.handshake.set_exception(TransportError(
                f"transport: peer {self.peer.id} at {self.peer.url} closed the connection "
                f"during the handshake: {reason}"))
        if not self.closed.done():
            self.closed.set_result(reason)
        if self.peer.conn is self:
            # Stop flushes into a dead transport now; _run() notices the
            # closed future on its next turn and goes to backoff.
            self.peer.conn = None
            self.peer.paused = False
            self.peer.wake_writers()

    def pause_writing(self) -> None:
        self.peer.paused = True

    def resume_writing(self) -> None:
        self.peer.paused = False
        self.peer.schedule_flush()
        self.peer.wake_writers()


class _SnapshotClient(asyncio.Protocol):
    """A snapshot request: flow-controlled body writes, then one response."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tr: asyncio.Transport | None = None
        self.response: asyncio.Future[_Reply] = loop.create_future()
        self._loop = loop
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._reply = _Reply()
        self._parser = httptools.HttpResponseParser(self._reply)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._finish(TransportError(f"transport: malformed snapshot reply: {e}"))
            return
        self._reply.status = self._parser.get_status_code()
        if self._reply.complete:
            self._finish(self._reply)

    def _finish(self, result: _Reply | Exception) -> None:
        if not self.response.done():
            if isinstance(result, Exception):
                self.response.set_exception(result)
            else:
                self.response.set_result(result)
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(TransportError(f"transport: snapshot connection lost: "
                                    f"{exc or 'closed by peer'}"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def _wake(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        """Wait until the socket buffer is below its high-water mark or the reply came."""
        while self._paused and not self.response.done():
            self._drain = self._loop.create_future()
            await self._drain


class Peer:
    """The outbound side of the link to one remote node."""

    def __init__(self, t: Transport, peer_id: int, url: str) -> None:
        self.t = t
        self.id = peer_id
        self.url = ""
        self._scheme = self._host = ""
        self._port = 0
        self.set_url(url)
        self.stats = t.stats_for(peer_id)
        self.state = _CONNECTING
        self.conn: _StreamClient | None = None
        # Frames encoded by send(), written by the next flush.
        self.queue = FrameQueue(t.queue_size, t.max_frame)
        self.paused = False
        self._flush_scheduled = False
        self.last_error = ""
        self._connected_once = False
        self._wake = asyncio.Event()
        self._snapshots: set[asyncio.Task[None]] = set()
        self._writable: asyncio.Future[None] | None = None
        self._task = t.loop.create_task(self._run())

    def set_url(self, url: str) -> None:
        scheme, host, port = parse_url(url)
        if scheme == "https" and self.t.client_ssl is None:
            raise TransportError(f"transport: peer {self.id} has an https URL but the "
                                 f"transport has no TLS config")
        self.url, self._scheme, self._host, self._port = url, scheme, host, port

    @property
    def reachable(self) -> bool:
        return self.state == _ACTIVE

    # -- sending -----------------------------------------------------------------

    def send(self, msgs: list[Message]) -> None:
        """Queue messages (none of them MsgSnap) for this peer; never blocks."""
        state = self.state
        if state == _ACTIVE or state == _CONNECTING:
            left_out = self.queue.push(msgs)
            self.schedule_flush()
            if left_out:
                self._left_out(left_out)
        else:
            self._drop(len(msgs), "peer unreachable")

    def _left_out(self, n: int) -> None:
        oversized = self.queue.take_oversized()
        for m in oversized:
            # The peer would close the stream on a frame over its limit
            # (413), so such a message is dropped here instead of costing
            # every message behind it.
            logger.error("transport: dropped %r to peer %d: its frame exceeds the limit "
                         "of %d bytes", m, self.id, self.t.max_frame)
        self.stats.dropped += len(oversized)
        if n > len(oversized):
            self._drop(n - len(oversized), "queue full")

    def _drop(self, n: int, why: str) -> None:
        self.stats.dropped += n
        logger.debug("transport: dropped %d messages to peer %d: %s", n, self.id, why)
        self.t.report_unreachable(self.id)

    async def wait_writable(self) -> None:
        """Wait while the socket is above its high-water mark (pause_writing).

        For producers that can wait (benchmarks, bulk tools); the node never
        does: it relies on the bounded queue and drops.
        """
        while self.paused and self.state == _ACTIVE:
            if self._writable is None or self._writable.done():
                self._writable = self.t.loop.create_future()
            await self._writable

    def wake_writers(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def schedule_flush(self) -> None:
        if (not self._flush_scheduled and self.queue and self.state == _ACTIVE
                and not self.paused):
            self._flush_scheduled = True
            self.t.loop.call_soon(self._flush)

    def _flush(self) -> None:
        # Everything queued since the last flush goes out as one write.
        self._flush_scheduled = False
        conn = self.conn
        if conn is None or self.paused:
            return
        tr = conn.tr
        if tr is None or tr.is_closing():
            return
        buf = self.queue.take(self.stats.sent)
        if buf is not None:
            tr.write(buf)

    # -- connection ----------------------------------------------------------------

    async def _dial(self) -> _StreamClient:
        t = self.t
        head = request_head(STREAM_PATH, self._host, self._port, t.cluster_id, t.node_id,
                            self.id, upgrade=True)
        ssl_ctx = t.client_ssl if self._scheme == "https" else None
        proto: _StreamClient | None = None
        try:
            _, proto = await t.loop.create_connection(
                lambda: _StreamClient(self, head), self._host, self._port, ssl=ssl_ctx,
                server_hostname=self._host if ssl_ctx else None)
            await proto.handshake
            # A peer host that vanishes without a FIN must still be noticed
            # on an idle stream; raft's own heartbeats cover a busy one.
            sock = proto.tr.get_extra_info("socket") if proto.tr is not None else None
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            return proto
        except BaseException:
            if proto is not None and proto.tr is not None:
                proto.tr.close()
            raise

    async def _run(self) -> None:
        t = self.t
        delay = t.backoff_min
        while self.state != _STOPPED:
            self.state = _CONNECTING
            url = self.url
            try:
                conn = await asyncio.wait_for(self._dial(), t.dial_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any dial failure means backoff
                self.stats.dial_failures += 1
                why = f"timed out after {t.dial_timeout} s" if isinstance(
                    e, asyncio.TimeoutError) else str(e) or type(e).__name__
                self._set_error(f"dial {url}: {why}")
            else:
                if self.state == _STOPPED:
                    # stop() ran while the dial finished: on Python 3.11,
                    # wait_for() can return the result and swallow the
                    # cancellation. Without this check the task would mark
                    # itself active and wait on a stream nobody closes.
                    if conn.tr is not None:
                        conn.tr.close()
                    return
                if url != self.url:
                    # update_url() ran during the dial: this stream goes to
                    # the old address. Drop it and dial the new one at once.
                    assert conn.tr is not None
                    conn.tr.close()
                    continue
                if self._connected_once:
                    self.stats.reconnects += 1
                self._connected_once = True
                if self.last_error:
                    logger.info("transport: stream to peer %d at %s is up", self.id, url)
                self.last_error = ""
                delay = t.backoff_min
                self.conn, self.paused, self.state = conn, False, _ACTIVE
                self.schedule_flush()
                reason = await conn.closed
                self.conn = None
                if self.state == _STOPPED:
                    return
                self._set_error(f"stream to {url} lost: {reason}")
            if self.state == _STOPPED:
                return
            # Backoff with jitter; update_peer() cuts it short.
            self.state = _BACKOFF
            n = self.queue.clear()
            if n:
                self._drop(n, "peer unreachable")
            else:
                t.report_unreachable(self.id)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay * random.uniform(0.5, 1.0))
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, t.backoff_max)

    def _set_error(self, err: str) -> None:
        # Log a failure when it starts or changes, not on every retry.
        if err != self.last_error:
            logger.warning("transport: peer %d: %s", self.id, err)
        self.last_error = err

    def update_url(self, url: str) -> None:
        """Switch to a new URL: drop the current stream and dial the new one now."""
        self.set_url(url)
        if self.conn is not None and self.conn.tr is not None:
            self.conn.tr.close()
        self._wake.set()

    async def stop(self) -> None:
        self.state = _STOPPED
        self.queue.clear()
        if self.conn is not None and self.conn.tr is not None:
            self.conn.tr.close()
        tasks = [self._task, *self._snapshots]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- snapshots -----------------------------------------------------------------

    def send_snapshot(self, m: Message) -> None:
        task = self.t.loop.create_task(self._send_snapshot(m))
        self._snapshots.add(task)
        task.add_done_callback(self._snapshots.discard)

    async def _send_snapshot(self, m: Message) -> None:
        ok = False
        try:
            reply = await self._stream_snapshot(m)
            ok = reply.status in (200, 204)
            if not ok:
                logger.warning("transport: peer %d refused snapshot at index %d: %s", self.id,
                               m.snapshot.metadata.index if m.snapshot else 0, reply.text())
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure is report_snapshot(False)
            logger.warning("transport: snapshot to peer %d at %s failed: %s", self.id, self.url, e)
        finally:
            if ok:
                self.stats.snap_sent_ok += 1
            else:
                self.stats.snap_sent_failed += 1
            self.t.report_snapshot(self.id, ok)

    async def _stream_snapshot(self, m: Message) -> Any:
        t = self.t
        ssl_ctx = t.client_ssl if self._scheme == "https" else None
        _, proto = await asyncio.wait_for(t.loop.create_connection(
            lambda: _SnapshotClient(t.loop), self._host, self._port, ssl=ssl_ctx,
            server_hostname=self._host if ssl_ctx else None), t.dial_timeout)
        tr = proto.tr
        assert tr is not None
        # Room for a few compressed chunks in the socket buffer, so the
        # kernel sends one while the loop compresses the next (with the
        # default 64 KiB mark every chunk paused the stream until drained).
        tr.set_write_buffer_limits(high=4 * t.snapshot_chunk_size)
        try:
            tr.write(request_head(SNAPSHOT_PATH, self._host, self._port, t.cluster_id,
                                  t.node_id, self.id, upgrade=False))
            for chunk in compressed_chunks(m, t.snapshot_chunk_size):
                if proto.response.done():
                    break       # the peer answered early: an error, read below
                if chunk:
                    # HTTP/1.1 chunked encoding; a zero-length chunk would end the body.
                    tr.writelines([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
                    await proto.drain()
            if not proto.response.done():
                tr.write(b"0\r\n\r\n")
            return await proto.response
        finally:
            tr.close()
