"""Random bytes at the listener: every connection ends cleanly, the listener survives."""
from __future__ import annotations

import asyncio
import random
import struct

from easyraft._core.codec import encode_frames, encode_message
from easyraft._core.types import Entry, Message, MsgType
from easyraft.transport import Transport
from tests.transport.test_listener import Recorder, hb, run, until
from tests.transport.test_rejections import head


def payloads(rng: random.Random, n: int) -> list[bytes]:
    valid = encode_message(Message(type=MsgType.MsgApp, to=1, frm=2, term=3, index=4,
                                   entries=[Entry(term=3, index=5, data=b"abc")]))
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:       # noise
            out.append(rng.randbytes(rng.randrange(1, 300)))
        elif kind == 1:     # a plausible length, then noise
            body = rng.randbytes(rng.randrange(0, 200))
            out.append(struct.pack("<I", len(body)) + body)
        elif kind == 2:     # a valid frame with one byte flipped
            frame = bytearray(struct.pack("<I", len(valid)) + valid)
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
            out.append(bytes(frame))
        else:               # a valid frame cut short, then noise
            frame = struct.pack("<I", len(valid)) + valid
            out.append(frame[:rng.randrange(1, len(frame))] + rng.randbytes(rng.randrange(0, 50)))
    return out


def test_fuzz_stream_bytes_never_break_the_listener(loop_name):
    async def main() -> None:
        r = Recorder(1, 1)
        t = Transport(r, "http://127.0.0.1:0", max_size_per_msg=1 << 16)
        await t.start()
        port = int(t.listen_url.rsplit(":", 1)[1])
        rng = random.Random(1234)
        outcomes: dict[bytes, int] = {}
        for p in payloads(rng, 240):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head() + p)
            writer.write_eof()      # the server sees EOF and must close its side
            reply = await asyncio.wait_for(reader.read(), 30)
            writer.close()
            assert reply.startswith(b"HTTP/1.1 101 "), reply[:80]
            status = reply.split(b"\r\n\r\n", 1)[1][:12]
            outcomes[status] = outcomes.get(status, 0) + 1
        # Whatever got through was a well-formed message from 2 to 1.
        assert all(m.frm == 2 and m.to == 1 for m in r.got)
        assert any(k.startswith(b"HTTP/1.1 400") for k in outcomes), outcomes
        # The listener still serves a good stream.
        before = len(r.got)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head() + encode_frames([hb(2, 1, 9)]))
        await until(lambda: len(r.got) == before + 1, "a good stream after the noise")
        writer.close()
        await t.stop()

    run(loop_name, main)
