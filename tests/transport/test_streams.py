"""Message streams between transports in separate processes on 127.0.0.1."""
from __future__ import annotations

import socket
import threading

from tests.transport.conftest import count, peer


def test_stream_two_processes_exchange_messages(spawn):
    a = spawn("--id", 1)
    b = spawn("--id", 2)
    a.call("add_peer", id=2, url=b.url)
    b.call("add_peer", id=1, url=a.url)
    for _ in range(10):
        a.call("send", to=2, type="MsgHeartbeat", count=100)
        a.call("send", to=2, type="MsgApp", count=2, entries=64, size=512)
    b.call("send", to=1, type="MsgAppResp", count=500)
    sb = b.wait_for(lambda s: count(s, 1, "MsgHeartbeat") == 1000 and count(s, 1, "MsgApp") == 20,
                    "b receives 1000 heartbeats and 20 appends")
    sa = a.wait_for(lambda s: count(s, 2, "MsgAppResp") == 500, "a receives 500 responses")
    assert sb["in_order"] and sa["in_order"]
    assert peer(sa, 2)["reachable"] and peer(sb, 1)["reachable"]
    assert peer(sb, 1)["active"] >= 0      # heard from a
    text = a.call("metrics")["text"]
    assert 'easyraft_transport_messages_sent_total{cluster="1",node="1",peer="2",type="MsgApp"} 20' in text
    assert 'messages_received_total{cluster="1",node="1",peer="2",type="MsgAppResp"} 500' in text


def test_stream_three_processes_all_pairs(spawn):
    nodes = {i: spawn("--id", i) for i in (1, 2, 3)}
    for i, n in nodes.items():
        for j, m in nodes.items():
            if i != j:
                n.call("add_peer", id=j, url=m.url)
    for i, n in nodes.items():
        for j in nodes:
            if i != j:
                n.call("send", to=j, type="MsgApp", count=50, entries=4, size=100)
    for i, n in nodes.items():
        others = [j for j in nodes if j != i]
        st = n.wait_for(lambda s: all(count(s, j, "MsgApp") == 50 for j in others),
                        f"node {i} hears 50 appends from each peer")
        assert st["in_order"]


def test_stream_peer_down_and_back(spawn):
    a = spawn("--id", 1)
    b = spawn("--id", 2)
    a.call("add_peer", id=2, url=b.url)
    a.call("send", to=2, count=10)
    b.wait_for(lambda s: count(s, 1, "MsgHeartbeat") == 10, "first heartbeats arrive")
    b.kill()
    # While b is gone, sends are dropped and reported, never blocked.
    st = a.wait_for(lambda s: (a.call("send", to=2, count=5) and s["unreachable"].get("2", 0) > 0
                               and not peer(s, 2)["reachable"]),
                    "a reports 2 unreachable")
    assert peer(st, 2)["error"]
    b2 = spawn("--id", 2, "--listen", b.url)
    b2.wait_for(lambda s: (a.call("send", to=2, count=1) and count(s, 1, "MsgHeartbeat") > 0),
                "heartbeats reach the restarted peer")
    assert peer(a.call("state"), 2)["reachable"]
    text = a.call("metrics")["text"]
    assert 'easyraft_transport_reconnects_total{cluster="1",node="1",peer="2"} 0' not in text
    assert 'easyraft_transport_dropped_messages_total{cluster="1",node="1",peer="2"} 0' not in text


def test_stream_partition_by_closing_peer(spawn):
    nodes = {i: spawn("--id", i) for i in (1, 2, 3)}
    for i, n in nodes.items():
        for j, m in nodes.items():
            if i != j:
                n.call("add_peer", id=j, url=m.url)
    a, b, c = nodes[1], nodes[2], nodes[3]
    a.call("send", to=3, count=1)
    c.wait_for(lambda s: count(s, 1, "MsgHeartbeat") == 1, "c is connected")
    c.stop()
    # The majority side keeps talking while every message to c is dropped.
    a.wait_for(lambda s: (a.call("send", to=3, count=10) and not peer(s, 3)["reachable"]),
               "a sees 3 down")
    for _ in range(20):
        a.call("send", to=2, count=10)
        a.call("send", to=3, count=10)
        b.call("send", to=1, count=10)
    b.wait_for(lambda s: count(s, 1, "MsgHeartbeat") == 200, "b hears all of a")
    a.wait_for(lambda s: count(s, 2, "MsgHeartbeat") == 200, "a hears all of b")
    assert a.call("state")["unreachable"].get("3", 0) > 0


def test_stream_update_peer_url(spawn):
    a = spawn("--id", 1)
    b = spawn("--id", 2)
    a.call("add_peer", id=2, url=b.url)
    a.call("send", to=2, count=3)
    b.wait_for(lambda s: count(s, 1, "MsgHeartbeat") == 3, "b at its first URL")
    b2 = spawn("--id", 2)      # the member moved to a new port (RAFT_ChangeServer)
    a.call("update_peer", id=2, url=b2.url)
    b2.wait_for(lambda s: (a.call("send", to=2, count=1) and count(s, 1, "MsgHeartbeat") > 0),
                "messages follow the new URL")
    assert peer(a.call("state"), 2)["url"] == b2.url


def test_stream_remove_peer_cuts_both_directions(spawn):
    a = spawn("--id", 1)
    b = spawn("--id", 2)
    a.call("add_peer", id=2, url=b.url)
    b.call("add_peer", id=1, url=a.url)
    a.call("send", to=2, count=3)
    b.call("send", to=1, count=3)
    b.wait_for(lambda s: count(s, 1, "MsgHeartbeat") == 3, "a -> b connected")
    a.wait_for(lambda s: count(s, 2, "MsgHeartbeat") == 3, "b -> a connected")
    # The cluster removed 2: a forgets it and refuses its streams from now on.
    a.call("set_removed", id=2)
    a.call("remove_peer", id=2)
    assert all(p["id"] != 2 for p in a.call("state")["peers"])
    a.call("send", to=2, count=5)       # unknown peer now: dropped and reported
    assert a.call("state")["unreachable"].get("2", 0) > 0
    st = b.wait_for(lambda s: (b.call("send", to=1, count=1) and "403" in peer(s, 1)["error"]),
                    "b's stream to a is cut and refused with 403")
    assert not peer(st, 1)["reachable"]
    assert count(a.call("state"), 2, "MsgHeartbeat") == 3
    assert count(b.call("state"), 1, "MsgHeartbeat") == 3
    assert "403" in a.log() and "removed" in a.log()


class _SilentPeer:
    """A listener that accepts the upgrade and then never reads: a stuck peer."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            head = b""
            while b"\r\n\r\n" not in head:
                head += c.recv(1)
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                      b"Upgrade: easyraft-stream/1\r\n\r\n")
            self.conns.append(c)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_stream_slow_peer_does_not_block_others(spawn):
    silent = _SilentPeer()
    try:
        a = spawn("--id", 1, "--queue-size", 256)
        b = spawn("--id", 2)
        a.call("add_peer", id=3, url=f"http://127.0.0.1:{silent.port}")
        a.call("add_peer", id=2, url=b.url)
        # 3 never reads: its socket fills, writes pause, its queue overflows
        # and drops; 2 gets every message all the same.
        a.wait_for(lambda s: (a.call("send", to=3, type="MsgApp", count=64, entries=64, size=512)
                              and s["unreachable"].get("3", 0) > 0),
                   "the stuck peer's queue overflows")
        for _ in range(10):
            a.call("send", to=2, type="MsgApp", count=10, entries=8, size=512)
            a.call("send", to=3, type="MsgApp", count=64, entries=64, size=512)
        b.wait_for(lambda s: count(s, 1, "MsgApp") == 100, "the healthy peer gets everything")
        st = a.call("state")
        assert "2" not in st["unreachable"]
        text = a.call("metrics")["text"]
        assert 'dropped_messages_total{cluster="1",node="1",peer="3"} 0' not in text
        assert 'dropped_messages_total{cluster="1",node="1",peer="2"} 0' in text
    finally:
        silent.close()
