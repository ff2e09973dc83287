"""Property tests for the core's binary codec (easyraft._core.codec) and the
ConfChange wire form (etcd: raftpb marshalling, quick_test.go in spirit).

Three kinds of checks:
- round trips: decode(encode(x)) == x for every record kind, and the bytes
  match an independent struct-based encoder of the documented wire format;
- hostile input: every truncation, every appended byte, random garbage and
  lying length fields raise CodecError (a RaftError and a ValueError), fast
  and without allocating what the input claims;
- memory safety: decoders never read past the end of the buffer they were
  given (checked with a guard page in a child process).
"""
import pickle
import struct
import subprocess
import sys
import textwrap
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from easyraft._core import codec
from easyraft._core.types import (
    CodecError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    FrameTooLargeError,
    HardState,
    Message,
    MsgType,
    RaftError,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
)

# Deterministic runs (STYLE 8.4): a fixed derivation of examples, no example
# database, no wall-clock deadline on a loaded 2-core CI box.
DET = settings(derandomize=True, database=None, deadline=None)

U64 = st.integers(min_value=0, max_value=2**64 - 1)
NODE_ID = st.integers(min_value=1, max_value=2**64 - 1)
SMALL_BYTES = st.binary(max_size=48)

entries = st.builds(
    Entry,
    term=U64,
    index=U64,
    type=st.sampled_from([EntryType.EntryNormal, EntryType.EntryConfChange]),
    data=SMALL_BYTES,
)


@st.composite
def conf_states(draw):
    ids = draw(st.lists(NODE_ID, unique=True, max_size=9))
    split = draw(st.integers(min_value=0, max_value=len(ids)))
    return ConfState(voters=ids[:split], learners=ids[split:])


snapshot_metadatas = st.builds(SnapshotMetadata, index=U64, term=U64, conf_state=conf_states())
snapshots = st.builds(Snapshot, data=st.binary(max_size=96), metadata=snapshot_metadatas)
hard_states = st.builds(HardState, term=U64, vote=U64, commit=U64)
conf_changes = st.builds(
    ConfChange,
    type=st.sampled_from(list(ConfChangeType)),
    node_id=U64,
    context=SMALL_BYTES,
)

messages = st.builds(
    Message,
    type=st.sampled_from(list(MsgType)),
    to=U64,
    frm=U64,
    term=U64,
    log_term=U64,
    index=U64,
    entries=st.lists(entries, max_size=5),
    commit=U64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=U64,
    context=SMALL_BYTES,
)


# --- an independent encoder of the documented wire format (codec.pyx docstring) ---

def ref_entry(e):
    return struct.pack("<QQBI", e.term, e.index, e.type, len(e.data)) + e.data


def ref_conf_state(cs):
    return (struct.pack("<I", len(cs.voters)) + b"".join(struct.pack("<Q", v) for v in cs.voters)
            + struct.pack("<I", len(cs.learners))
            + b"".join(struct.pack("<Q", v) for v in cs.learners))


def ref_snapshot_metadata(md):
    return struct.pack("<QQ", md.index, md.term) + ref_conf_state(md.conf_state)


def ref_message(m):
    flags = (1 if m.reject else 0) | (2 if m.snapshot is not None else 0)
    out = struct.pack("<BB7QI", m.type, flags, m.to, m.frm, m.term, m.log_term, m.index,
                      m.commit, m.reject_hint, len(m.context)) + m.context
    out += struct.pack("<I", len(m.entries)) + b"".join(ref_entry(e) for e in m.entries)
    if m.snapshot is not None:
        out += (ref_snapshot_metadata(m.snapshot.metadata)
                + struct.pack("<Q", len(m.snapshot.data)) + m.snapshot.data)
    return out


def ref_conf_change(cc):
    return struct.pack("<BBQI", 1, cc.type, cc.node_id, len(cc.context)) + cc.context


# --- round trips -------------------------------------------------------------

@DET
@given(entries)
def test_codec_entry_round_trip(e):
    enc = codec.encode_entry(e)
    assert enc == ref_entry(e)
    got = codec.decode_entry(enc)
    assert got == e
    assert (got.term, got.index, got.type, got.data) == (e.term, e.index, e.type, e.data)


@DET
@given(hard_states)
def test_codec_hard_state_round_trip(hs):
    enc = codec.encode_hard_state(hs)
    assert enc == struct.pack("<QQQ", hs.term, hs.vote, hs.commit)
    assert codec.decode_hard_state(enc) == hs


@DET
@given(conf_states())
def test_codec_conf_state_round_trip(cs):
    enc = codec.encode_conf_state(cs)
    assert enc == ref_conf_state(cs)
    assert codec.decode_conf_state(enc) == cs


@DET
@given(snapshot_metadatas)
def test_codec_snapshot_metadata_round_trip(md):
    enc = codec.encode_snapshot_metadata(md)
    assert enc == ref_snapshot_metadata(md)
    assert codec.decode_snapshot_metadata(enc) == md


@DET
@given(messages)
def test_codec_message_round_trip(m):
    enc = codec.encode_message(m)
    assert enc == ref_message(m)
    got = codec.decode_message(enc)
    assert got == m
    # Field by field as well, so a lax __eq__ cannot hide a lost field.
    for name in ("type", "to", "frm", "term", "log_term", "index", "commit", "reject",
                 "reject_hint", "context", "entries", "snapshot"):
        assert getattr(got, name) == getattr(m, name), name


@DET
@given(conf_changes)
def test_confchange_round_trip(cc):
    enc = cc.encode()
    assert enc == ref_conf_change(cc)
    assert ConfChange.decode(enc) == cc
    assert ConfChange.decode(bytearray(enc)) == cc


@DET
@given(st.one_of(st.binary(max_size=200).map(bytearray), st.binary(max_size=200).map(memoryview)))
def test_codec_decoders_accept_buffers(buf):
    # Whatever bytes say, a bytearray or memoryview with the same content says the same.
    for dec in (codec.decode_message, codec.decode_entry, codec.decode_hard_state,
                codec.decode_conf_state, codec.decode_snapshot_metadata):
        try:
            want = dec(bytes(buf))
        except CodecError:
            with pytest.raises(CodecError):
                dec(buf)
        else:
            assert dec(buf) == want


def test_codec_message_with_snapshot_round_trip():
    snap = Snapshot(data=b"state" * 100,
                    metadata=SnapshotMetadata(index=7, term=3,
                                              conf_state=ConfState([1, 2, 3], [4])))
    m = Message(type=MsgType.MsgSnap, to=2, frm=1, term=3, snapshot=snap)
    got = codec.decode_message(codec.encode_message(m))
    assert got.snapshot == snap
    assert got.snapshot.metadata.conf_state.voters == (1, 2, 3)
    assert got.snapshot.metadata.conf_state.learners == (4,)


def test_codec_message_reject_and_hint_round_trip():
    m = Message(type=MsgType.MsgAppResp, to=1, frm=2, term=5, index=9, reject=True,
                reject_hint=4, log_term=2)
    got = codec.decode_message(codec.encode_message(m))
    assert got.reject is True and got.reject_hint == 4 and got.log_term == 2
    m.reject = False
    assert codec.decode_message(codec.encode_message(m)).reject is False


# --- frames --------------------------------------------------------------------

@DET
@given(st.lists(messages, max_size=4), st.data())
def test_codec_frames_round_trip_and_partial_tail(msgs, data):
    buf = codec.encode_frames(msgs)
    assert buf == b"".join(struct.pack("<I", len(ref_message(m))) + ref_message(m) for m in msgs)
    got, consumed = codec.decode_frames(buf)
    assert got == msgs and consumed == len(buf)
    # Cut anywhere: only the frames wholly inside the prefix come back, and
    # `consumed` stops at the last complete frame.
    bounds = [0]
    for m in msgs:
        bounds.append(bounds[-1] + 4 + len(codec.encode_message(m)))
    cut = data.draw(st.integers(min_value=0, max_value=len(buf)), label="cut")
    got, consumed = codec.decode_frames(buf[:cut])
    complete = max(i for i, b in enumerate(bounds) if b <= cut)
    assert got == msgs[:complete]
    assert consumed == bounds[complete]


@DET
@given(st.lists(messages, min_size=1, max_size=4), st.lists(st.integers(1, 64), max_size=30))
def test_codec_frames_streamed_in_chunks(msgs, chunk_sizes):
    # The transport feeds whatever the socket gives; the concatenation of
    # what comes out must be the messages that went in.
    buf = codec.encode_frames(msgs)
    pending, out, pos = b"", [], 0
    sizes = iter(chunk_sizes)
    while pos < len(buf):
        n = next(sizes, len(buf))
        pending += buf[pos:pos + n]
        pos += n
        got, consumed = codec.decode_frames(pending)
        out.extend(got)
        pending = pending[consumed:]
    assert out == msgs and pending == b""


def test_codec_frames_too_large_raises_before_body_arrives():
    m = Message(type=MsgType.MsgApp, to=2, frm=1, entries=[Entry(1, 1, data=b"x" * 1000)])
    buf = codec.encode_frames([m])
    size = len(buf) - 4
    assert codec.decode_frames(buf, max_frame=size)[0] == [m]
    with pytest.raises(FrameTooLargeError):
        codec.decode_frames(buf, max_frame=size - 1)
    # Only the prefix has arrived: refused now, not after buffering 4 GiB.
    with pytest.raises(FrameTooLargeError):
        codec.decode_frames(struct.pack("<I", 0xFFFFFFFF))
    with pytest.raises(FrameTooLargeError):
        codec.decode_frames(buf[:4], max_frame=size - 1)
    # A good frame in front is not a licence for a bad one behind it.
    with pytest.raises(FrameTooLargeError):
        codec.decode_frames(buf + struct.pack("<I", 2**31), max_frame=size)
    assert issubclass(FrameTooLargeError, CodecError)


def test_codec_frames_short_prefix_is_not_an_error():
    for k in range(4):
        assert codec.decode_frames(b"\x01" * k) == ([], 0)


def test_codec_frames_malformed_body_raises():
    m = codec.encode_message(Message(type=MsgType.MsgHeartbeat, to=2, frm=1, term=1))
    # A frame one byte longer than its message: trailing garbage inside the frame.
    with pytest.raises(CodecError):
        codec.decode_frames(struct.pack("<I", len(m) + 1) + m + b"\x00")
    # A frame one byte shorter: the message inside is truncated.
    with pytest.raises(CodecError):
        codec.decode_frames(struct.pack("<I", len(m) - 1) + m[:-1])
    # An empty frame holds no message.
    with pytest.raises(CodecError):
        codec.decode_frames(struct.pack("<I", 0))


# --- hostile input -----------------------------------------------------------

DECODERS = {
    "entry": (codec.encode_entry, codec.decode_entry, entries),
    "hard_state": (codec.encode_hard_state, codec.decode_hard_state, hard_states),
    "conf_state": (codec.encode_conf_state, codec.decode_conf_state, conf_states()),
    "snapshot_metadata": (codec.encode_snapshot_metadata, codec.decode_snapshot_metadata,
                          snapshot_metadatas),
    "message": (codec.encode_message, codec.decode_message, messages),
    "conf_change": (lambda cc: cc.encode(), ConfChange.decode, conf_changes),
}


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_codec_truncation_at_every_offset_raises(kind):
    encode, decode, strategy = DECODERS[kind]

    @settings(DET, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(x):
        enc = encode(x)
        for k in range(len(enc)):
            with pytest.raises(CodecError):
                decode(enc[:k])
        with pytest.raises(CodecError):
            decode(enc + b"\x00")

    check()


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_codec_random_garbage_raises_codec_error_or_decodes_stably(kind):
    encode, decode, _ = DECODERS[kind]

    @settings(DET, max_examples=300)
    @given(st.binary(max_size=160))
    def check(buf):
        try:
            x = decode(buf)
        except CodecError as exc:
            assert isinstance(exc, RaftError) and isinstance(exc, ValueError)
            assert str(exc).startswith("codec: ")
            return
        # Whatever decoded must encode and decode to the same value.
        assert decode(encode(x)) == x

    check()


@DET
@given(messages, st.data())
def test_codec_message_byte_flips_never_escape_codec_error(m, data):
    enc = bytearray(codec.encode_message(m))
    for _ in range(4):
        i = data.draw(st.integers(0, len(enc) - 1))
        enc[i] = data.draw(st.integers(0, 255))
    try:
        got = codec.decode_message(bytes(enc))
    except CodecError:
        return
    assert codec.decode_message(codec.encode_message(got)) == got


def _header(typ=MsgType.MsgApp, flags=0, nctx=0):
    return struct.pack("<BB7QI", typ, flags, 2, 1, 3, 0, 0, 0, 0, nctx)


LYING_INPUTS = {
    # 70 bytes claiming 2**32-1 entries.
    "message_entry_count": (codec.decode_message,
                            _header() + struct.pack("<I", 0xFFFFFFFF) + b"\x00" * 4),
    "message_context_len": (codec.decode_message, _header(nctx=0xFFFFFFFF) + b"\x00" * 8),
    "message_entry_data_len": (codec.decode_message,
                               _header() + struct.pack("<I", 1)
                               + struct.pack("<QQBI", 1, 1, 0, 0xFFFFFFFF) + b"\x00" * 8),
    "message_snapshot_data_len": (codec.decode_message,
                                  _header(MsgType.MsgSnap, flags=2) + struct.pack("<I", 0)
                                  + struct.pack("<QQII", 5, 1, 0, 0)
                                  + struct.pack("<Q", 2**64 - 1) + b"\x00" * 8),
    "message_snapshot_voters": (codec.decode_message,
                                _header(MsgType.MsgSnap, flags=2) + struct.pack("<I", 0)
                                + struct.pack("<QQI", 5, 1, 0xFFFFFFFF) + b"\x00" * 8),
    "entry_data_len": (codec.decode_entry, struct.pack("<QQBI", 1, 1, 0, 0xFFFFFFFF) + b"x" * 40),
    "conf_state_voters": (codec.decode_conf_state, struct.pack("<I", 0xFFFFFFFF) + b"\x00" * 64),
    "conf_state_learners": (codec.decode_conf_state,
                            struct.pack("<IQI", 1, 1, 0xFFFFFFFF) + b"\x00" * 64),
    "snapshot_metadata_voters": (codec.decode_snapshot_metadata,
                                 struct.pack("<QQI", 1, 1, 0x7FFFFFFF) + b"\x00" * 64),
    "conf_change_context_len": (ConfChange.decode, struct.pack("<BBQI", 1, 0, 4, 0xFFFFFFFF)),
}


@pytest.mark.parametrize("name", sorted(LYING_INPUTS))
def test_codec_lying_length_raises_without_allocating_it(name):
    decode, buf = LYING_INPUTS[name]
    assert len(buf) < 200
    tracemalloc.start()
    try:
        with pytest.raises(CodecError):
            decode(buf)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The claim is gigabytes; what was spent must be on the order of the input.
    assert peak < 64 * 1024, peak


@pytest.mark.parametrize("name,buf", [
    ("unknown message type", struct.pack("<BB7QII", 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("unknown message flags", struct.pack("<BB7QII", 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ("unknown entry type", struct.pack("<BB7QII", 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
     + struct.pack("<QQBI", 1, 1, 2, 0)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_codec_message_rejects_unknown_enum_values(name, buf):
    with pytest.raises(CodecError):
        codec.decode_message(buf)


def test_codec_encode_rejects_a_message_type_out_of_range():
    m = Message(type=MsgType.MsgApp)
    m.type = 200       # a public byte: only __init__ checks it
    for encode in (codec.encode_message, lambda m: codec.encode_frames([m])):
        with pytest.raises(CodecError, match="unknown message type 200"):
            encode(m)


def test_codec_entry_rejects_unknown_type():
    with pytest.raises(CodecError):
        codec.decode_entry(struct.pack("<QQBI", 1, 1, 2, 0))


@pytest.mark.parametrize("buf,why", [
    (struct.pack("<BBQI", 2, 0, 1, 0), "version"),
    (struct.pack("<BBQI", 1, 4, 1, 0), "type"),
    (struct.pack("<BBQI", 1, 0, 1, 3) + b"ab", "short context"),
    (struct.pack("<BBQI", 1, 0, 1, 1) + b"ab", "trailing"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_confchange_decode_rejects_malformed(buf, why):
    with pytest.raises(CodecError):
        ConfChange.decode(buf)


def test_codec_hard_state_requires_exactly_24_bytes():
    for n in (0, 23, 25, 48):
        with pytest.raises(CodecError):
            codec.decode_hard_state(b"\x00" * n)


# --- wrong argument types: a TypeError, never a crash or garbage ------------------
#
# Run in a child process each, since the failure mode being guarded against is
# a segfault or a read of unrelated memory.

FOREIGN_ARGS = {
    "encode_entry(None)": "codec.encode_entry(None)",
    "encode_entry(bytes)": "codec.encode_entry(b'raw')",
    "encode_message(None)": "codec.encode_message(None)",
    "encode_message(Entry)": "codec.encode_message(Entry())",
    "encode_hard_state(None)": "codec.encode_hard_state(None)",
    "encode_frames(None)": "codec.encode_frames(None)",
    "encode_frames([None])": "codec.encode_frames([None])",
    "encode_frames([Message, bytes])": "codec.encode_frames([Message(), b'not a message'])",
    "message.entries=[bytes]":
        "m = Message(type=MsgType.MsgApp); m.entries = [b'x']; codec.encode_message(m)",
    "message.entries=None":
        "m = Message(type=MsgType.MsgApp); m.entries = None",
    "message.context=None":
        "m = Message(type=MsgType.MsgApp); m.context = None; codec.encode_message(m)",
    "encode_conf_state(None)": "codec.encode_conf_state(None)",
    "encode_snapshot_metadata(None)": "codec.encode_snapshot_metadata(None)",
    "decode_message(None)": "codec.decode_message(None)",
    "decode_frames(str)": "codec.decode_frames('text')",
}
# These crashed or returned garbage before codec type-checked its arguments
# (found by this file); they stay here as regression cases.


def _run_child(code):
    prelude = ("from easyraft._core import codec\n"
               "from easyraft._core.types import *\n")
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name", list(FOREIGN_ARGS))
def test_codec_foreign_arguments_raise_type_error(name):
    code = ("try:\n    " + FOREIGN_ARGS[name] + "\nexcept TypeError:\n    print('TypeError')\n"
            "else:\n    print('no error')\n")
    proc = _run_child(code)
    assert (proc.returncode, proc.stdout.strip()) == (0, "TypeError"), proc.stderr[-300:]


# --- memory safety: never read past the end of the input ------------------------
#
# A truncated buffer is placed so that it ends exactly at a page followed by an
# inaccessible guard page; a decoder that reads even one byte too far kills the
# child process with SIGSEGV instead of raising CodecError.

_GUARD_CHILD = textwrap.dedent(r"""
    import ctypes, mmap, sys
    from easyraft._core import codec
    from easyraft._core.types import *
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    PAGE = mmap.PAGESIZE
    base = libc.mmap(None, 2 * PAGE, 3, 0x22, -1, 0)          # PROT_READ|WRITE, PRIVATE|ANON
    assert base not in (None, ctypes.c_void_p(-1).value)
    assert libc.mprotect(base + PAGE, PAGE, 0) == 0           # PROT_NONE guard page

    def at_page_end(b):
        addr = base + PAGE - len(b)
        ctypes.memmove(addr, b, len(b))
        return memoryview((ctypes.c_char * len(b)).from_address(addr)).cast("B")

    snap = Snapshot(b"s" * 9, SnapshotMetadata(9, 2, ConfState([1, 2], [3])))
    m = Message(type=MsgType.MsgSnap, to=2, frm=1, term=2, log_term=1, index=3, commit=3,
                entries=[Entry(2, 4, EntryType.EntryNormal, b"abc")], snapshot=snap,
                context=b"ctx", reject=True, reject_hint=3)
    cases = [
        (codec.decode_message, codec.encode_message(m)),
        (codec.decode_message, codec.encode_message(Message(type=MsgType.MsgHeartbeat))),
        (codec.decode_entry, codec.encode_entry(Entry(1, 2, EntryType.EntryNormal, b"xyz"))),
        (codec.decode_hard_state, codec.encode_hard_state(HardState(1, 2, 3))),
        (codec.decode_conf_state, codec.encode_conf_state(ConfState([1, 2], [3]))),
        (codec.decode_snapshot_metadata, codec.encode_snapshot_metadata(snap.metadata)),
        (lambda b: codec.decode_frames(b)[0], codec.encode_frames([m, m])),
    ]
    for dec, enc in cases:
        for k in range(len(enc) + 1):
            sys.stdout.write(f"{dec.__name__} {k}\n")
            sys.stdout.flush()
            try:
                dec(at_page_end(enc[:k]))
            except CodecError:
                pass
    print("done")
""")


def test_codec_never_reads_past_the_end_of_its_input():
    proc = subprocess.run([sys.executable, "-c", _GUARD_CHILD], capture_output=True, text=True,
                          timeout=120)
    last = proc.stdout.strip().splitlines()[-1:] or ["<nothing>"]
    assert proc.returncode == 0, (
        f"decoder crashed (rc={proc.returncode}) at input '{last[0]}'; "
        f"stderr: {proc.stderr[-500:]}")
    assert last == ["done"]


# --- value types: equality, hash, repr, validation, pickling ------------------------

def test_types_entry_equality_covers_every_field():
    base = Entry(term=1, index=2, type=EntryType.EntryNormal, data=b"x")
    assert base == Entry(1, 2, EntryType.EntryNormal, b"x")
    assert hash(base) == hash(Entry(1, 2, EntryType.EntryNormal, b"x"))
    for other in (Entry(9, 2, 0, b"x"), Entry(1, 9, 0, b"x"), Entry(1, 2, 1, b"x"),
                  Entry(1, 2, 0, b"y")):
        assert base != other
    assert base != (1, 2, 0, b"x")


def test_types_defaults_and_bytes_coercion():
    e = Entry()
    assert (e.term, e.index, e.type, e.data) == (0, 0, EntryType.EntryNormal, b"")
    assert Entry(data=bytearray(b"ab")).data == b"ab"
    assert Entry(data=memoryview(b"ab")).data == b"ab"
    assert Entry(data=None).data == b""
    with pytest.raises(TypeError):
        Entry(data="text")
    m = Message()
    assert m.entries == [] and m.context == b"" and m.snapshot is None and m.reject is False
    assert ConfChange().context == b"" and ReadState().request_ctx == b""


def test_types_message_entries_behave_as_one_list_though_created_lazily():
    # Messages without entries hold none until asked (decoding allocates no
    # list per heartbeat); Python always sees one stable, mutable list.
    hb = codec.decode_message(codec.encode_message(Message(type=MsgType.MsgHeartbeat, to=2)))
    for m in (Message(), hb):
        ents = m.entries
        assert ents == [] and m.entries is ents
        ents.append(Entry(term=1, index=1))
        assert m.entries == [Entry(term=1, index=1)]
        assert m == Message(type=m.type, to=m.to, entries=[Entry(term=1, index=1)])
    assert Message() == Message(entries=[]) and Message() != Message(entries=[Entry()])
    m = Message(type=MsgType.MsgApp)
    m.entries = [Entry(index=3)]
    assert pickle.loads(pickle.dumps(m)) == m and pickle.loads(pickle.dumps(Message())) == Message()
    assert codec.decode_message(codec.encode_message(m)) == m
    with pytest.raises(TypeError, match="must be a list"):
        m.entries = None
    with pytest.raises(TypeError, match="must be a list"):
        m.entries = (Entry(),)
    with pytest.raises(AttributeError):
        del m.entries


def test_types_reject_invalid_values():
    with pytest.raises(ValueError):
        Entry(type=2)
    with pytest.raises(ValueError):
        Message(type=19)
    with pytest.raises(ValueError):
        ConfChange(type=4)
    with pytest.raises(OverflowError):
        Entry(term=2**64)
    with pytest.raises(OverflowError):
        HardState(term=-1)
    with pytest.raises(TypeError):
        Message(entries=[b"x"])
    with pytest.raises(ValueError):
        ConfState(voters=[1, 2], learners=[2])
    with pytest.raises(ValueError):
        ConfState(voters=[0])
    with pytest.raises(TypeError):
        ConfState(voters=[True])


def test_types_conf_state_is_sorted_and_deduplicated():
    cs = ConfState(voters=[3, 1, 2, 3], learners=[5, 4])
    assert cs.voters == (1, 2, 3) and cs.learners == (4, 5)
    assert cs == ConfState([1, 2, 3], [4, 5])
    assert hash(cs) == hash(ConfState([1, 2, 3], [4, 5]))
    assert cs != ConfState([1, 2, 3], [4])


def test_types_records_are_immutable():
    e = Entry(1, 1)
    with pytest.raises(AttributeError):
        e.term = 2
    with pytest.raises(AttributeError):
        HardState().commit = 1
    with pytest.raises(AttributeError):
        e.extra = 1   # no per-entry __dict__


def test_types_message_equality_and_unhashable():
    a = Message(type=MsgType.MsgApp, to=2, frm=1, term=1, entries=[Entry(1, 1)])
    b = Message(type=MsgType.MsgApp, to=2, frm=1, term=1, entries=[Entry(1, 1)])
    assert a == b
    for field, value in [("type", MsgType.MsgAppResp), ("to", 3), ("frm", 3), ("term", 2),
                         ("log_term", 1), ("index", 1), ("commit", 1), ("reject", True),
                         ("reject_hint", 1), ("context", b"c"), ("entries", []),
                         ("snapshot", Snapshot())]:
        c = Message(type=MsgType.MsgApp, to=2, frm=1, term=1, entries=[Entry(1, 1)])
        setattr(c, field, value)
        assert a != c, field
    with pytest.raises(TypeError):
        hash(a)


@pytest.mark.parametrize("obj,want", [
    (Entry(1, 2, EntryType.EntryConfChange, b"x"),
     "Entry(term=1, index=2, type=EntryConfChange, data=b'x')"),
    (HardState(1, 2, 3), "HardState(term=1, vote=2, commit=3)"),
    (SoftState(2, StateType.StateLeader), "SoftState(lead=2, raft_state=StateLeader)"),
    (ConfState([2, 1], [3]), "ConfState(voters=[1, 2], learners=[3])"),
    (ConfChange(ConfChangeType.ConfChangeRemoveNode, 3, b"u"),
     "ConfChange(type=ConfChangeRemoveNode, node_id=3, context=b'u')"),
    (ReadState(4, b"r"), "ReadState(index=4, request_ctx=b'r')"),
    (Message(type=MsgType.MsgAppResp, to=1, frm=2, term=3, reject=True, reject_hint=5),
     "Message(type=MsgAppResp, to=1, frm=2, term=3, reject=True, reject_hint=5)"),
], ids=lambda v: type(v).__name__ if not isinstance(v, str) else "")
def test_types_repr(obj, want):
    assert repr(obj) == want


def test_types_repr_truncates_large_payloads():
    assert len(repr(Entry(data=b"x" * 10000))) < 200
    assert "<10000 bytes>" in repr(Snapshot(data=b"x" * 10000))


@pytest.mark.parametrize("obj", [
    Entry(1, 2, EntryType.EntryConfChange, b"x"),
    HardState(1, 2, 3),
    ConfState([1, 2], [3]),
    SnapshotMetadata(4, 2, ConfState([1])),
    Snapshot(b"data", SnapshotMetadata(4, 2, ConfState([1]))),
    ConfChange(ConfChangeType.ConfChangeUpdateNode, 7, b"http://x"),
    Message(type=MsgType.MsgApp, to=2, frm=1, entries=[Entry(1, 1)], context=b"c"),
], ids=lambda v: type(v).__name__)
def test_types_pickle_round_trip(obj):
    assert pickle.loads(pickle.dumps(obj)) == obj


def test_types_enums_match_design_values():
    assert [StateType.StateFollower, StateType.StateCandidate, StateType.StateLeader,
            StateType.StatePreCandidate] == [0, 1, 2, 3]
    assert MsgType.MsgHup == 0 and MsgType.MsgPreVoteResp == 18 and len(MsgType) == 19
    assert [c.name for c in ConfChangeType] == ["ConfChangeAddNode", "ConfChangeRemoveNode",
                                               "ConfChangeUpdateNode", "ConfChangeAddLearnerNode"]


def test_codec_errors_are_raft_and_value_errors():
    with pytest.raises(RaftError):
        codec.decode_entry(b"")
    with pytest.raises(ValueError):
        codec.decode_entry(b"")


@pytest.mark.parametrize("voters,learners", [([0], []), ([2, 2], []), ([1], [1]), ([], [0])],
                         ids=["zero-voter", "duplicate", "voter-and-learner", "zero-learner"])
def test_codec_conf_state_rejects_what_the_constructor_rejects(voters, learners):
    """A decoded ConfState must satisfy ConfState()'s invariants (ids in
    1..2**64-1, no duplicates, voters and learners disjoint), else a corrupt
    snapshot would install a membership no caller could have built."""
    buf = (struct.pack("<I", len(voters)) + b"".join(struct.pack("<Q", v) for v in voters)
           + struct.pack("<I", len(learners)) + b"".join(struct.pack("<Q", v) for v in learners))
    with pytest.raises(CodecError):
        codec.decode_conf_state(buf)
