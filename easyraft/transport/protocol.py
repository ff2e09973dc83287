"""Wire constants and HTTP/1.1 head helpers shared by both ends of a peer link.

etcd's rafthttp speaks HTTP/1.1 with a few X-* headers and then streams
protobuf frames; easyraft keeps that shape (so curl, proxies and packet
captures make sense of the first bytes) but switches the connection to a
raw frame stream with an Upgrade handshake instead of chunked encoding,
which would add a hex length and CRLFs to every write.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from easyraft.errors import RaftError

# Bumped on any incompatible change to the frame stream or snapshot body.
PROTOCOL_VERSION = 1
UPGRADE_TOKEN = b"easyraft-stream/1"

STREAM_PATH = "/raft/stream"
SNAPSHOT_PATH = "/raft/snapshot"
STATUS_PATH = "/raft/status"
METRICS_PATH = "/metrics"

# A request head larger than this is refused before it is fully buffered.
MAX_HEAD_SIZE = 16 * 1024
# Room above max_size_per_msg for a message's fixed fields and for the one
# entry that may exceed max_size_per_msg on its own (the core always sends at
# least one entry). Snapshots never travel on the stream, so they need none.
FRAME_HEADROOM = 1 << 20

REASONS = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    412: "Precondition Failed",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class TransportError(RaftError):
    """A peer link failed or was refused, or the transport was misused."""


class RequestError(TransportError):
    """A request to the listener is refused with this HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"transport: {status} {REASONS.get(status, '')}: {reason}")


def parse_url(url: str) -> tuple[str, str, int]:
    """Split a peer URL into (scheme, host, port); TransportError if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise TransportError(f"transport: bad URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise TransportError(f"transport: bad URL {url!r}: scheme must be http or https")
    if not parts.hostname:
        raise TransportError(f"transport: bad URL {url!r}: no host")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port


def request_head(path: str, host: str, port: int, cluster_id: int, frm: int, to: int,
                 *, upgrade: bool) -> bytes:
    """Build the head of a stream (upgrade) or snapshot (chunked body) request."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"X-Raft-Cluster-ID: {cluster_id}",
        f"X-Raft-From: {frm}",
        f"X-Raft-To: {to}",
        f"X-Raft-Version: {PROTOCOL_VERSION}",
    ]
    if upgrade:
        lines += ["Connection: Upgrade", f"Upgrade: {UPGRADE_TOKEN.decode()}", "Content-Length: 0"]
    else:
        lines += ["Content-Type: application/x-easyraft-snapshot", "Transfer-Encoding: chunked"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def response(status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
             *, close: bool = True) -> bytes:
    """Build a complete HTTP/1.1 response."""
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    if status == 101:
        head += ["Connection: Upgrade", f"Upgrade: {UPGRADE_TOKEN.decode()}"]
    else:
        if body:
            head.append(f"Content-Type: {content_type}")
        head.append(f"Content-Length: {len(body)}")
        if close:
            head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body
