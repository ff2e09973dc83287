"""One listener shared by several cluster ids in one process (DESIGN §2.2)."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest
import trustme
from easyraft._core.types import Entry, Message, MsgType

from easyraft.transport import TLSConfig, Transport, TransportError

T = TypeVar("T")


def run(loop_name: str, main: Callable[[], Awaitable[T]]) -> T:
    if loop_name == "uvloop":
        import uvloop
        return uvloop.run(main())  # type: ignore[no-any-return]
    return asyncio.run(main())  # type: ignore[arg-type]


class Recorder:
    def __init__(self, cluster_id: int, node_id: int) -> None:
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.got: list[Message] = []
        self.threads: set[int] = set()

    def process(self, messages: list[Message]) -> None:
        self.threads.add(threading.get_ident())
        self.got.extend(messages)

    async def process_snapshot(self, message: Message) -> None:
        self.got.append(message)

    def report_unreachable(self, peer_id: int) -> None:
        pass

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        pass

    def is_removed(self, peer_id: int) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "node_id": self.node_id}


async def until(pred: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def hb(frm: int, to: int, term: int) -> Message:
    return Message(type=MsgType.MsgHeartbeat, to=to, frm=frm, term=term)


def test_listener_shared_by_cluster_ids(loop_name, tmp_path):
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "c.key"))
    tls = TLSConfig(str(tmp_path / "c.pem"), str(tmp_path / "c.key"))

    async def main() -> None:
        r1, r2 = Recorder(1, 1), Recorder(2, 1)
        t1 = Transport(r1, "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        await t1.start()
        shared = t1.listen_url
        t2 = Transport(r2, shared, max_size_per_msg=1 << 20)
        await t2.start()
        assert t2.listener is t1.listener
        # The same (cluster, node) twice, or other TLS settings, cannot join.
        with pytest.raises(TransportError):
            await Transport(Recorder(1, 1), shared, max_size_per_msg=1 << 20).start()
        with pytest.raises(TransportError):
            await Transport(Recorder(3, 1), shared.replace("http", "https"),
                            max_size_per_msg=1 << 20, tls=tls).start()
        with pytest.raises(TransportError, match="transport: TLS"):
            Transport(Recorder(3, 1), "https://127.0.0.1:0", max_size_per_msg=1 << 20,
                      tls=TLSConfig("/nonexistent.pem", "/nonexistent.key"))
        # Peers of each cluster send to their node 1 at the shared URL.
        s1 = Transport(Recorder(1, 2), "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        s2 = Transport(Recorder(2, 2), "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        await s1.start()
        await s2.start()
        s1.add_peer(1, shared)
        s2.add_peer(1, shared)
        s1.send([hb(2, 1, 11)] * 3)
        s2.send([hb(2, 1, 22)] * 5)
        await until(lambda: len(r1.got) == 3 and len(r2.got) == 5, "both clusters receive")
        assert {m.term for m in r1.got} == {11} and {m.term for m in r2.got} == {22}
        body = await asyncio.get_running_loop().run_in_executor(
            None, lambda: urllib.request.urlopen(shared + "/raft/status", timeout=30).read())
        doc = json.loads(body)
        assert sorted((s["cluster_id"], s["node_id"]) for s in doc["servers"]) == [(1, 1), (2, 1)]
        await t1.stop()
        # t2 keeps the port: cluster 2 still reachable, cluster 1 now 412.
        s2.send([hb(2, 1, 22)])
        await until(lambda: len(r2.got) == 6, "cluster 2 still served")
        await until(lambda: "412" in s1.peer_status()[0]["error"], "cluster 1 refused with 412")
        for t in (t2, s1, s2):
            await t.stop()

    run(loop_name, main)


class LoopThread:
    """An event loop running in its own thread, as a second raft group would have."""

    def __init__(self, loop_name: str) -> None:
        self.loop_name = loop_name
        self.ready: Future[asyncio.AbstractEventLoop] = Future()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        self.loop = self.ready.result(timeout=30)

    def _main(self) -> None:
        async def main() -> None:
            self.stop_event = asyncio.Event()
            self.ready.set_result(asyncio.get_running_loop())
            await self.stop_event.wait()
        run(self.loop_name, main)

    def call(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)  # type: ignore[arg-type]

    def close(self) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)


def test_listener_shared_across_event_loops(loop_name):
    # Cluster 1's node lives on loop A and binds the port; cluster 2's node on
    # loop B joins it. B's messages are processed on B's thread; when A's node
    # stops, the listener moves to B without closing the port.
    a, b, c = LoopThread(loop_name), LoopThread(loop_name), LoopThread(loop_name)
    try:
        ra, rb = Recorder(1, 1), Recorder(2, 1)
        ta = Transport(ra, "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        a.call(ta.start())
        tb = Transport(rb, ta.listen_url, max_size_per_msg=1 << 20)
        b.call(tb.start())
        sender = Transport(Recorder(2, 2), "http://127.0.0.1:0", max_size_per_msg=1 << 20,
                           backoff_min=0.01)

        async def send_until(n: int) -> None:
            async def check() -> bool:
                sender.send([hb(2, 1, 5)])
                await asyncio.sleep(0.02)
                return len(rb.got) >= n
            end = time.monotonic() + 30
            while not await check():
                assert time.monotonic() < end, "cluster 2 never received"

        async def start_sender() -> None:
            await sender.start()
            sender.add_peer(1, ta.listen_url)
        c.call(start_sender())
        c.call(send_until(3))
        assert rb.threads == {b.thread.ident}
        a.call(ta.stop())
        before = len(rb.got)
        c.call(send_until(before + 3))      # reconnected to the listener on loop B
        assert tb.listener is not None and tb.listener.loop is b.loop
        assert rb.threads == {b.thread.ident}
        c.call(sender.stop())
        b.call(tb.stop())
    finally:
        for lt in (a, b, c):
            lt.close()


def test_listener_closes_connection_without_head(loop_name, monkeypatch):
    from easyraft.transport import server
    monkeypatch.setattr(server, "HEAD_TIMEOUT", 0.2)

    async def main() -> None:
        t = Transport(Recorder(1, 1), "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        await t.start()
        port = int(t.listen_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /raft/stream HTTP/1.1\r\nX-Raft-")    # ...and nothing more
        reply = await asyncio.wait_for(reader.read(), 30)
        assert reply.startswith(b"HTTP/1.1 408 ")
        writer.close()
        await t.stop()

    run(loop_name, main)


def test_peer_coalesces_one_iteration_into_one_write(loop_name):
    async def main() -> None:
        r = Recorder(1, 2)
        rt = Transport(r, "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        st = Transport(Recorder(1, 1), "http://127.0.0.1:0", max_size_per_msg=1 << 20)
        await rt.start()
        await st.start()
        st.add_peer(2, rt.listen_url)
        peer = st.peers[2]
        await until(lambda: peer.reachable, "stream up")
        assert peer.conn is not None
        writes: list[int] = []

        class CountingTransport:
            def __init__(self, tr: Any) -> None:
                self.tr = tr

            def write(self, data: bytes) -> None:
                writes.append(len(data))
                self.tr.write(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.tr, name)

        peer.conn.tr = CountingTransport(peer.conn.tr)  # type: ignore[assignment]
        for i in range(5):                    # five send() calls in one loop iteration
            st.send([hb(1, 2, 10 + i), hb(1, 2, 20 + i)])
        await until(lambda: len(r.got) == 10, "all ten arrive")
        assert len(writes) == 1
        assert [m.term for m in r.got] == [10, 20, 11, 21, 12, 22, 13, 23, 14, 24]
        await st.stop()
        await rt.stop()

    run(loop_name, main)


def test_peer_drops_a_message_over_the_frame_limit_and_keeps_the_stream(loop_name):
    async def main() -> None:
        r = Recorder(1, 2)
        rt = Transport(r, "http://127.0.0.1:0", max_size_per_msg=1 << 20, max_frame=4096)
        st = Transport(Recorder(1, 1), "http://127.0.0.1:0", max_size_per_msg=1 << 20,
                       max_frame=4096)
        await rt.start()
        await st.start()
        st.add_peer(2, rt.listen_url)
        big = Message(type=MsgType.MsgApp, to=2, frm=1, term=1,
                      entries=[Entry(term=1, index=1, data=b"x" * 5000)])
        st.send([hb(1, 2, 1), big, hb(1, 2, 2)])
        await until(lambda: len(r.got) == 2, "the two small messages arrive")
        assert [m.term for m in r.got] == [1, 2]
        assert st.stats[2].dropped == 1 and st.peers[2].reachable
        await st.stop()
        await rt.stop()

    run(loop_name, main)
