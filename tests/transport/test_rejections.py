"""Refusals seen from a raw HTTP client: nothing reaches the node, the listener survives."""
from __future__ import annotations

import contextlib
import json
import socket
import struct
from collections.abc import Iterator

import lz4.frame
import pytest
from easyraft._core.codec import encode_frames, encode_message
from easyraft._core.types import Message, MsgType

from tests.transport.conftest import count


def head(path: str = "/raft/stream", cluster: str = "1", frm: str = "2", to: str = "1",
         version: str = "1", upgrade: bool = True, method: str = "POST",
         extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x"]
    for name, v in (("X-Raft-Cluster-ID", cluster), ("X-Raft-From", frm), ("X-Raft-To", to),
                    ("X-Raft-Version", version)):
        if v is not None:
            lines.append(f"{name}: {v}")
    if upgrade:
        lines += ["Connection: Upgrade", "Upgrade: easyraft-stream/1"]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def exchange(port: int, *parts: bytes) -> bytes:
    """Send parts in order and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(30)
        for p in parts:
            try:
                s.sendall(p)
            except (BrokenPipeError, ConnectionResetError):
                break       # the server already refused and closed
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return out
            out += chunk
    return out


@contextlib.contextmanager
def open_stream(port: int, *parts: bytes) -> Iterator[bytes]:
    """Send parts, read the 101 head, and keep the stream open in the block."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(30)
        for p in parts:
            s.sendall(p)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        yield reply


def statuses(reply: bytes) -> list[int]:
    return [int(line.split()[1]) for line in reply.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def hb(frm: int = 2, to: int = 1) -> Message:
    return Message(type=MsgType.MsgHeartbeat, to=to, frm=frm, term=1)


CASES = [
    ("wrong-cluster", [head(cluster="7")], [412]),
    ("removed-sender", [head(frm="9")], [403]),
    ("unknown-target", [head(to="5")], [404]),
    ("missing-header", [head(frm=None)], [400]),
    ("non-decimal-id", [head(frm="0x2")], [400]),
    ("negative-id", [head(frm="-2")], [400]),
    ("id-overflow", [head(frm=str(1 << 64))], [400]),
    ("zero-id", [head(frm="0")], [400]),
    ("bad-version", [head(version="99")], [400]),
    ("no-upgrade", [head(upgrade=False, extra="Content-Length: 0\r\n")], [400]),
    ("wrong-method", [head(method="PUT")], [405]),
    ("unknown-path", [head(path="/raft/nope")], [404]),
    ("garbage-request", [b"\x16\x03\x01\x00\xa5garbage\r\n\r\n"], [400]),
    ("head-too-large", [b"POST /raft/stream HTTP/1.1\r\nX-Pad: " + b"a" * 40000], [431]),
    ("garbage-frame", [head(), b"\x08\x00\x00\x00" + b"\xff" * 8], [101, 400]),
    ("truncated-message", [head(), struct.pack("<I", 10) + encode_message(hb())[:10]],
     [101, 400]),
    ("hostile-length", [head(), b"\xff\xff\xff\xff" + b"x" * 64], [101, 413]),
    ("over-limit-frame", [head(), struct.pack("<I", (1 << 16) + (1 << 20) + 1)], [101, 413]),
    ("spoofed-sender", [head(), encode_frames([hb(frm=3)])], [101, 400]),
    ("wrong-target", [head(), encode_frames([hb(to=4)])], [101, 400]),
    ("snapshot-on-stream", [head(), encode_frames([Message(
        type=MsgType.MsgSnap, to=1, frm=2, term=1, snapshot=None)])], [101, 400]),
    ("snapshot-garbage-body", [head(path="/raft/snapshot", upgrade=False,
                                    extra="Transfer-Encoding: chunked\r\n"),
                               b"5\r\nhello\r\n0\r\n\r\n"], [400]),
    ("snapshot-too-large", [head(path="/raft/snapshot", upgrade=False,
                                 extra="Transfer-Encoding: chunked\r\n")], [413]),
]


def _snapshot_too_large_body() -> bytes:
    # A well-formed body announcing more than the listener's max_snapshot_size.
    from easyraft._core.types import Snapshot, SnapshotMetadata
    m = Message(type=MsgType.MsgSnap, to=1, frm=2, term=1,
                snapshot=Snapshot(b"", SnapshotMetadata(index=5, term=1)))
    enc = encode_message(m)
    raw = struct.pack("<I", len(enc)) + enc + struct.pack("<Q", 1 << 40)
    body = lz4.frame.compress(raw)
    return b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


@pytest.fixture
def listener(spawn):
    # max_size_per_msg 64 KiB -> frame limit 64 KiB + 1 MiB headroom.
    return spawn("--id", 1, "--max-size", 1 << 16, "--removed", 9, "--max-snapshot", 1 << 30)


def test_rejections_from_raw_client(listener):
    n = listener
    for name, parts, want in CASES:
        if name == "snapshot-too-large":
            parts = parts + [_snapshot_too_large_body()]
        reply = exchange(n.port, *parts)
        assert statuses(reply) == want, (name, reply[:300])
    st = n.call("state")
    assert st["counts"] == {} and st["snapshots"] == [], "a refused request reached the node"
    log = n.log()
    # Logged once per connection, with the client's address.
    assert log.count("transport: refused") == len(CASES), log
    assert "refused stream from 127.0.0.1:" in log
    assert "refused request from 127.0.0.1:" in log
    # The listener still serves: a good stream delivers, status and metrics answer.
    with open_stream(n.port, head(), encode_frames([hb(), hb()])) as reply:
        assert statuses(reply) == [101]
        n.wait_for(lambda s: count(s, 2, "MsgHeartbeat") == 2, "a valid stream after the garbage")
    status = exchange(n.port, b"GET /raft/status HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(status) == [200]
    doc = json.loads(status.split(b"\r\n\r\n", 1)[1])
    assert doc["servers"][0]["cluster_id"] == 1 and doc["servers"][0]["node_id"] == 1
    assert doc["servers"][0]["status"] == {"id": 1, "cluster_id": 1}
    metrics = exchange(n.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(metrics) == [200]
    text = metrics.split(b"\r\n\r\n", 1)[1].decode()
    for code in (400, 403, 404, 412, 413):
        assert f'easyraft_transport_rejected_requests_total{{code="{code}"}}' in text
    assert ('easyraft_transport_messages_received_total{cluster="1",node="1",peer="2",'
            'type="MsgHeartbeat"} 2') in text


def test_rejections_byte_by_byte_head(listener):
    # A head dribbled in one byte per packet parses the same as in one piece.
    parts = [bytes([b]) for b in head()] + [encode_frames([hb()])]
    with open_stream(listener.port, *parts) as reply:
        assert statuses(reply) == [101]
        listener.wait_for(lambda s: count(s, 2, "MsgHeartbeat") == 1, "dribbled stream delivers")
