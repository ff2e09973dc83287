"""The compiled transport helpers in easyraft._core.wire, against the codec."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from easyraft._core import wire
from easyraft._core.codec import decode_frames, encode_frames
from easyraft._core.types import (
    CodecError,
    Entry,
    FrameTooLargeError,
    Message,
    MsgType,
    Snapshot,
    SnapshotMetadata,
)
from easyraft._core.wire import (
    Counters,
    FrameQueue,
    FrameReader,
    group_by_to,
    single_destination,
    tally,
)


def test_wire_is_compiled():
    assert wire.__file__.endswith((".so", ".pyd"))


def msg(to: int = 2, frm: int = 1, t: MsgType = MsgType.MsgApp, n: int = 0,
        size: int = 10, ctx: bytes = b"") -> Message:
    # n == 0 leaves entries unset, as the core and the decoder do.
    ents = [Entry(term=3, index=i + 1, data=b"d" * size) for i in range(n)] if n else None
    return Message(type=t, to=to, frm=frm, term=3, index=7, context=ctx, entries=ents)


messages = st.lists(st.builds(msg, to=st.integers(1, 4), frm=st.integers(1, 4),
                              t=st.sampled_from([MsgType.MsgApp, MsgType.MsgHeartbeat,
                                                 MsgType.MsgVote, MsgType.MsgAppResp]),
                              n=st.integers(0, 5), size=st.integers(0, 300),
                              ctx=st.sampled_from([b"", b"c", b"x" * 40])), max_size=40)


@settings(max_examples=80, deadline=None)
@given(ms=messages, split=st.integers(0, 40), cuts=st.lists(st.integers(1, 4000), max_size=10))
def test_wire_frame_queue_matches_codec_and_reader_round_trips(ms, split, cuts):
    q, sent = FrameQueue(1 << 20, 1 << 20), Counters()
    # Two pushes before one take: the second one grows the buffer.
    assert q.push(ms[:split]) == 0 and q.push(ms[split:]) == 0
    assert len(q) == len(ms) and sent.messages == 0     # counted as sent only by take()
    buf = q.take(sent)
    if not ms:
        assert buf is None
        return
    assert buf == encode_frames(ms) and q.nbytes == 0 and len(q) == 0
    assert sent.messages == len(ms) and sent.bytes == len(buf)
    # Any split of the stream decodes to the same messages, in order.
    r = FrameReader(1 << 20, initial=64)
    got, off = [], 0
    for size in [*cuts, len(buf)]:
        chunk = buf[off:off + size]
        off += len(chunk)
        got += r.push(chunk)
    assert got == ms and r.pending == 0


def test_wire_frame_queue_beyond_its_size_cache_matches_codec():
    # push() remembers 256 sizes between its passes and sizes the rest again.
    ms = [msg(to=2, n=i % 3, size=i, ctx=b"c" * (i % 2)) for i in range(700)]
    q, sent = FrameQueue(1 << 20, 1 << 20), Counters()
    assert q.push(ms) == 0
    buf = q.take(sent)
    assert buf == encode_frames(ms) and sent.messages == 700
    big = msg(n=3, size=400)
    q = FrameQueue(1 << 20, 1000)
    assert q.push([*ms[:300], big, *ms[:300]]) == 1 and q.take_oversized() == [big]
    assert decode_frames(q.take(sent))[0] == [*ms[:300], *ms[:300]]


def test_wire_frame_queue_leaves_out_oversized_frames():
    small, big = msg(n=1), msg(n=4, size=1000)
    q, sent = FrameQueue(100, 500), Counters()
    assert q.push([small, big, small]) == 1
    assert q.take_oversized() == [big] and q.take_oversized() == []
    buf = q.take(sent)
    assert decode_frames(buf)[0] == [small, small]
    assert sent.rows() == [(int(MsgType.MsgApp), 2, len(buf))]


def test_wire_frame_queue_is_bounded_by_its_limit():
    ms = [msg(n=1) for _ in range(5)]
    q = FrameQueue(3, 1 << 20)
    assert q.push(ms[:2]) == 0
    assert q.push(ms[2:]) == 2          # one fits, two are left out
    assert len(q) == 3 and q.take_oversized() == []
    assert decode_frames(q.take(Counters()))[0] == ms[:3]
    assert q.push(ms) == 2              # room again after take()


def test_wire_frame_queue_clear_discards_without_counting():
    q, sent = FrameQueue(10, 1 << 20), Counters()
    q.push([msg(), msg()])
    assert q.clear() == 2 and len(q) == 0 and q.nbytes == 0
    assert q.take(sent) is None and sent.messages == 0
    q.push([msg()])
    assert decode_frames(q.take(sent))[0] == [msg()] and sent.messages == 1


def test_wire_frame_queue_rejects_bad_messages_before_queueing_any():
    good, bad = msg(), msg()
    bad.entries = ["not an entry"]
    q = FrameQueue(10, 1 << 20)
    with pytest.raises(TypeError, match="Entry"):
        q.push([good, bad])
    with pytest.raises(TypeError):
        q.push([good, "not a message"])
    with pytest.raises(TypeError):
        q.push(None)
    assert len(q) == 0 and q.take(Counters()) is None
    with pytest.raises(ValueError):
        FrameQueue(0, 100)
    # Message.type is a public byte: a value past the last MsgType must not
    # index the per-type counters.
    odd = msg()
    odd.type = 200
    with pytest.raises(CodecError, match="unknown message type 200"):
        q.push([good, odd])
    with pytest.raises(CodecError):
        tally([odd], Counters())
    assert len(q) == 0


def test_wire_single_destination():
    assert single_destination([msg(to=3), msg(to=3, t=MsgType.MsgHeartbeat)]) == 3
    assert single_destination([msg(to=3), msg(to=2)]) == 0
    assert single_destination([]) == 0
    snap = Message(type=MsgType.MsgSnap, to=3, snapshot=Snapshot(b"x", SnapshotMetadata()))
    assert single_destination([msg(to=3), snap]) == 0


def test_wire_helpers_refuse_non_messages():
    # A checked cast of a borrowed list item: a str must raise, not be read as a Message.
    with pytest.raises(TypeError):
        group_by_to([msg(), "x"])
    with pytest.raises(TypeError):
        tally(["x"], Counters())
    with pytest.raises(TypeError):
        group_by_to([msg(to=2), msg(to=3), "x"])   # past the first pass's early exit
    for fn in (single_destination, group_by_to):
        with pytest.raises(TypeError):
            fn(None)
        with pytest.raises(TypeError):
            fn([msg(), 1])
    with pytest.raises(TypeError):
        tally(None, Counters())


def test_wire_tally_stops_at_misrouted_message():
    ms = [msg(frm=1, to=2), msg(frm=1, to=2), msg(frm=3, to=2), msg(frm=1, to=2)]
    c = Counters()
    assert tally(ms, c, 1, 2, False) == 2
    assert c.messages == 2
    assert tally([msg(to=5)], Counters(), 1, 2) == 0
    snap = Message(type=MsgType.MsgSnap, to=2, frm=1, snapshot=Snapshot(b"x", SnapshotMetadata()))
    assert tally([snap], Counters(), 1, 2, False) == 0
    assert tally([snap], Counters(), 1, 2, True) == -1


def test_wire_group_by_to_keeps_order_and_splits_snapshots():
    snap = Message(type=MsgType.MsgSnap, to=3, frm=1, snapshot=Snapshot(b"x", SnapshotMetadata()))
    a, b, c = msg(to=2), msg(to=3), msg(to=2)
    groups, snaps = group_by_to([a, b, snap, c])
    assert groups == {2: [a, c], 3: [b]} and snaps == [snap]
    same = [a, c]
    groups, snaps = group_by_to(same)
    assert groups[2] is same and snaps == []      # the one-peer Ready is not copied
    assert group_by_to([]) == ({}, [])


def test_wire_frame_reader_hostile_prefix_does_not_grow():
    r = FrameReader(1 << 20, initial=1024)
    with pytest.raises(FrameTooLargeError):
        r.push(b"\xff\xff\xff\xff" + b"x" * 100)
    assert len(r.get_buffer()) <= 1024


def test_wire_frame_reader_grows_for_an_allowed_large_frame():
    m = msg(n=8, size=4000)      # ~32 KiB frame into a 1 KiB initial buffer
    r = FrameReader(1 << 20, initial=1024)
    assert r.push(encode_frames([m, m])) == [m, m]


def test_wire_frame_reader_batches_and_errors():
    ms = [msg(t=MsgType.MsgHeartbeat) for _ in range(600)]
    r = FrameReader(1 << 20)
    data = encode_frames(ms)
    view = r.get_buffer()
    view[:len(data)] = data
    batches = [r.feed(len(data))]
    while batches[-1]:
        batches.append(r.next_batch())
    assert [len(b) for b in batches[:-1]] == [256, 256, 88]
    bad = FrameReader(1 << 20)
    with pytest.raises(CodecError):
        bad.push(struct.pack("<I", 3) + b"\x01\x02\x03")
    with pytest.raises(ValueError):
        FrameReader(1024).feed(10 ** 6)


def test_wire_frame_reader_checks_routing_and_counts():
    c = Counters()
    r = FrameReader(1 << 20, counters=c, frm=1, to=2)
    good = [msg(frm=1, to=2, n=2), msg(frm=1, to=2, t=MsgType.MsgHeartbeat)]
    data = encode_frames(good)
    assert r.push(data) == good
    assert c.messages == 2 and c.bytes == len(data)
    for bad in (msg(frm=3, to=2), msg(frm=1, to=4),
                Message(type=MsgType.MsgSnap, to=2, frm=1,
                        snapshot=Snapshot(b"x", SnapshotMetadata()))):
        with pytest.raises(CodecError, match="does not belong"):
            FrameReader(1 << 20, frm=1, to=2).push(encode_frames([good[0], bad]))
