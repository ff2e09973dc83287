"""Snapshot transfer body: encoding on the sender, incremental decoding on the receiver.

A MsgSnap travels on its own `POST /raft/snapshot` request (etcd: rafthttp's
snapshot_sender.go / the snapshot handler in http.go), never on the stream, so
a large snapshot cannot delay heartbeats. The chunked request body is one LZ4
frame (with content checksum) whose decompressed content is

    u32 n | n bytes: the MsgSnap encoded with empty snapshot data
          | u64 size | size bytes: the snapshot data

Memory: the sender compresses straight from a memoryview of the snapshot it
already holds, one chunk at a time, awaiting flow control between chunks; the
receiver decompresses with a bounded output size per call and copies into a
SnapshotBuffer that becomes the final bytes object. Each side therefore holds
the snapshot once plus O(chunk) of buffers.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

import lz4.frame

from easyraft._core.codec import decode_message, encode_message
from easyraft._core.types import CodecError, Message, MsgType, Snapshot
from easyraft._core.wire import SnapshotBuffer
from easyraft.transport.protocol import RequestError

# Raw bytes compressed per step: large enough to keep lz4 and the socket
# efficient, small enough that per-transfer buffers stay a few MiB.
CHUNK_SIZE = 1 << 20

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def snapshot_header(m: Message) -> bytes:
    """Return the framed MsgSnap (without its data) and the data length."""
    snap = m.snapshot
    if m.type != MsgType.MsgSnap or snap is None:
        raise ValueError("transport: snapshot_header needs a MsgSnap with a snapshot")
    shell = Message(type=m.type, to=m.to, frm=m.frm, term=m.term, log_term=m.log_term,
                    index=m.index, commit=m.commit, reject=m.reject,
                    reject_hint=m.reject_hint, context=m.context,
                    snapshot=Snapshot(b"", snap.metadata))
    enc: bytes = encode_message(shell)
    return _U32.pack(len(enc)) + enc + _U64.pack(len(snap.data))


def compressed_chunks(m: Message, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the compressed request body of MsgSnap `m`, piece by piece."""
    comp = lz4.frame.LZ4FrameCompressor(content_checksum=True)
    yield comp.begin() + comp.compress(snapshot_header(m))
    assert m.snapshot is not None  # checked by snapshot_header
    data = memoryview(m.snapshot.data)
    for off in range(0, len(data), chunk_size):
        out = comp.compress(data[off:off + chunk_size])
        if out:
            yield out
    yield comp.flush()


class SnapshotReader:
    """Rebuild a MsgSnap from its compressed body, fed in arbitrary pieces.

    feed() and finish() raise RequestError with status 400 for a malformed
    body and 413 when the header or the announced size exceeds the limits;
    nothing is allocated for an announced size before it passed the check.
    """

    def __init__(self, max_header: int, max_snapshot_size: int,
                 chunk_size: int = CHUNK_SIZE) -> None:
        self._max_header = max_header
        self._max_size = max_snapshot_size
        self._chunk = chunk_size
        self._dec = lz4.frame.LZ4FrameDecompressor()
        self._pending = bytearray()     # header bytes not yet complete
        self._need = _U32.size          # bytes _pending must reach in this phase
        self._phase = 0                 # 0 prefix, 1 message, 2 size, 3 data
        self._message: Message | None = None
        self._data: SnapshotBuffer | None = None
        self.compressed = 0             # body bytes fed, for metrics and logs

    def feed(self, data: bytes) -> None:
        """Decompress and consume one piece of the request body."""
        self.compressed += len(data)
        if self._dec.eof:
            if data:
                raise RequestError(400, "data after the end of the snapshot body")
            return
        try:
            out = self._dec.decompress(data, self._chunk)
            self._consume(out)
            while not self._dec.needs_input and not self._dec.eof:
                self._consume(self._dec.decompress(b"", self._chunk))
        except RuntimeError as e:   # lz4's error for corrupt frames
            raise RequestError(400, f"bad snapshot body: {e}") from None
        if self._dec.eof and self._dec.unused_data:
            raise RequestError(400, "data after the end of the snapshot body")

    def _consume(self, out: bytes) -> None:
        view = memoryview(out)
        while view:
            if self._phase == 3:
                assert self._data is not None
                try:
                    self._data.write(view)
                except ValueError as e:
                    raise RequestError(400, str(e)) from None
                return
            take = min(self._need - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < self._need:
                return
            self._advance()

    def _advance(self) -> None:
        # _pending holds exactly the bytes of the current header phase.
        if self._phase == 0:
            n = _U32.unpack(self._pending)[0]
            if n > self._max_header:
                raise RequestError(413, f"snapshot message header of {n} bytes exceeds "
                                        f"limit {self._max_header}")
            self._phase, self._need = 1, n
        elif self._phase == 1:
            try:
                m = decode_message(self._pending)
            except CodecError as e:
                raise RequestError(400, f"bad snapshot message: {e}") from None
            if m.type != MsgType.MsgSnap or m.snapshot is None:
                raise RequestError(400, "snapshot request does not carry a MsgSnap")
            self._message = m
            self._phase, self._need = 2, _U64.size
        elif self._phase == 2:
            size = _U64.unpack(self._pending)[0]
            if size > self._max_size:
                raise RequestError(413, f"snapshot of {size} bytes exceeds limit "
                                        f"{self._max_size}")
            self._data = SnapshotBuffer(size)
            self._phase = 3
        self._pending = bytearray()

    def finish(self) -> Message:
        """Return the complete MsgSnap; RequestError(400) if the body was cut short."""
        if not self._dec.eof or self._phase != 3 or self._message is None:
            raise RequestError(400, "snapshot body ended early")
        assert self._data is not None
        try:
            data = self._data.finish()
        except ValueError as e:
            raise RequestError(400, str(e)) from None
        m = self._message
        assert m.snapshot is not None
        m.snapshot = Snapshot(data, m.snapshot.metadata)
        return m
