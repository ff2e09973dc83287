"""Binary codec for entries, messages, hard state and snapshot metadata.

Wire format, version 1, all integers little-endian:

  Entry      u64 term | u64 index | u8 type | u32 n | n bytes data
  HardState  u64 term | u64 vote | u64 commit
  ConfState  u32 nv | nv x u64 voter | u32 nl | nl x u64 learner
  SnapMeta   u64 index | u64 term | ConfState
  Snapshot   SnapMeta | u64 n | n bytes data
  Message    u8 type | u8 flags (1 = reject, 2 = has snapshot)
             | u64 to, frm, term, log_term, index, commit, reject_hint
             | u32 n | n bytes context | u32 ne | ne x Entry | [Snapshot]
  Frame      u32 n | n bytes Message        (the transport's stream unit)

A decoder never trusts a length: it checks it against the bytes present
before allocating, and rejects trailing garbage inside a frame.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_SIZE, PyList_GET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.string cimport memcpy
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from easyraft._core.types cimport (Entry, HardState, Message, Snapshot, SnapshotMetadata,
                                   ConfState, MSG_TYPE_COUNT, EntryConfChange, msg_entry_count)
from easyraft._core.types import CodecError, FrameTooLargeError

DEF FLAG_REJECT = 1
DEF FLAG_SNAPSHOT = 2
DEF FLAGS_KNOWN = 3

# Frames larger than this are refused unless the caller passes its own limit.
DEFAULT_MAX_FRAME = 64 * 1024 * 1024


# --- readers ---------------------------------------------------------------

cdef inline int _need(Reader *r, Py_ssize_t n, const char *what) except -1:
    if n < 0 or r.len - r.pos < n:
        raise CodecError(f"codec: truncated {what.decode()}: need {n} bytes at offset "
                         f"{r.pos}, have {r.len - r.pos}")
    return 0


cdef inline uint64_t _u64(Reader *r) noexcept:
    cdef uint64_t v = er_load_u64(r.buf + r.pos)
    r.pos += 8
    return v


cdef inline uint32_t _u32(Reader *r) noexcept:
    cdef uint32_t v = er_load_u32(r.buf + r.pos)
    r.pos += 4
    return v


cdef inline bytes _bytes(Reader *r, Py_ssize_t n):
    cdef bytes b = PyBytes_FromStringAndSize(r.buf + r.pos, n)
    r.pos += n
    return b


cdef Entry read_entry(Reader *r):
    cdef uint64_t term, index
    cdef uint8_t typ
    cdef uint32_t n
    _need(r, ENTRY_HEADER_SIZE, b"entry")
    term = _u64(r)
    index = _u64(r)
    typ = <uint8_t>r.buf[r.pos]
    r.pos += 1
    if typ > EntryConfChange:
        raise CodecError(f"codec: unknown entry type {typ} at offset {r.pos - 1}")
    n = _u32(r)
    _need(r, n, b"entry data")
    return Entry.new(term, index, typ, _bytes(r, n))


cdef ConfState _read_conf_state(Reader *r):
    cdef uint32_t n, i
    cdef list voters = [], learners = []
    _need(r, 4, b"conf state")
    n = _u32(r)
    _need(r, <Py_ssize_t>n * 8, b"conf state voters")
    for i in range(n):
        voters.append(_u64(r))
    _need(r, 4, b"conf state")
    n = _u32(r)
    _need(r, <Py_ssize_t>n * 8, b"conf state learners")
    for i in range(n):
        learners.append(_u64(r))
    # Refuse what ConfState() itself refuses: id 0, duplicates, overlap.
    ids = set(voters)
    if 0 in ids or len(ids) != len(voters):
        raise CodecError("codec: conf state voters contain 0 or duplicates")
    lset = set(learners)
    if 0 in lset or len(lset) != len(learners) or ids & lset:
        raise CodecError("codec: conf state learners contain 0, duplicates or voters")
    return ConfState.new(voters, learners)


cdef SnapshotMetadata _read_snapshot_metadata(Reader *r):
    cdef uint64_t index, term
    _need(r, 16, b"snapshot metadata")
    index = _u64(r)
    term = _u64(r)
    return SnapshotMetadata.new(index, term, _read_conf_state(r))


cdef Message read_message(Reader *r):
    cdef uint8_t typ, flags
    cdef uint32_t n, ne, i
    cdef uint64_t sn
    cdef Message m
    cdef list entries
    cdef Entry e
    cdef SnapshotMetadata meta
    # Everything up to and including the context length; the entry count
    # is checked after the context.
    _need(r, MESSAGE_HEADER_SIZE - 4, b"message header")
    typ = <uint8_t>r.buf[r.pos]
    flags = <uint8_t>r.buf[r.pos + 1]
    if typ >= MSG_TYPE_COUNT:
        raise CodecError(f"codec: unknown message type {typ} at offset {r.pos}")
    if flags & ~FLAGS_KNOWN:
        raise CodecError(f"codec: unknown message flags {flags:#x} at offset {r.pos + 1}")
    r.pos += 2
    m = Message.new(typ, 0, 0, 0)
    m.to = _u64(r)
    m.frm = _u64(r)
    m.term = _u64(r)
    m.log_term = _u64(r)
    m.index = _u64(r)
    m.commit = _u64(r)
    m.reject_hint = _u64(r)
    m.reject = (flags & FLAG_REJECT) != 0
    n = _u32(r)
    _need(r, n, b"message context")
    if n:
        m.context = _bytes(r, n)
    _need(r, 4, b"message entry count")
    ne = _u32(r)
    # Each entry takes at least its header: refuse counts the input cannot hold.
    if <Py_ssize_t>ne * ENTRY_HEADER_SIZE > r.len - r.pos:
        raise CodecError(f"codec: message claims {ne} entries but only "
                         f"{r.len - r.pos} bytes follow")
    if ne:
        entries = PyList_New(ne)
        for i in range(ne):
            e = read_entry(r)
            Py_INCREF(e)
            PyList_SET_ITEM(entries, i, e)
        m._entries = entries
    if flags & FLAG_SNAPSHOT:
        meta = _read_snapshot_metadata(r)
        _need(r, 8, b"snapshot data length")
        sn = _u64(r)
        if sn > <uint64_t>(r.len - r.pos):
            raise CodecError(f"codec: snapshot claims {sn} bytes, {r.len - r.pos} present")
        m.snapshot = Snapshot.new(_bytes(r, <Py_ssize_t>sn), meta)
    return m


# --- writers ---------------------------------------------------------------

cdef inline Py_ssize_t entry_size(Entry e) noexcept:
    return ENTRY_HEADER_SIZE + PyBytes_GET_SIZE(e.data)


cdef inline Py_ssize_t _conf_state_size(ConfState cs) noexcept:
    return 8 + 8 * (len(cs.voters) + len(cs.learners))


cdef Py_ssize_t message_size(Message m) except -1:
    cdef Py_ssize_t size = MESSAGE_HEADER_SIZE + PyBytes_GET_SIZE(m.context)
    cdef Py_ssize_t i, n = msg_entry_count(m)
    for i in range(n):
        size += entry_size(<Entry>PyList_GET_ITEM(m._entries, i))
    if m.snapshot is not None:
        size += 16 + _conf_state_size(m.snapshot.metadata.conf_state) + 8 + len(m.snapshot.data)
    return size


cdef inline char *write_entry(char *p, Entry e) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(e.data)
    er_store_u64(p, e.term)
    er_store_u64(p + 8, e.index)
    p[16] = <char>e.type
    er_store_u32(p + 17, <uint32_t>n)
    memcpy(p + ENTRY_HEADER_SIZE, PyBytes_AS_STRING(e.data), n)
    return p + ENTRY_HEADER_SIZE + n


cdef char *_write_conf_state(char *p, ConfState cs) except NULL:
    er_store_u32(p, <uint32_t>len(cs.voters))
    p += 4
    for v in cs.voters:
        er_store_u64(p, v)
        p += 8
    er_store_u32(p, <uint32_t>len(cs.learners))
    p += 4
    for v in cs.learners:
        er_store_u64(p, v)
        p += 8
    return p


cdef char *write_message(char *p, Message m) except NULL:
    cdef Py_ssize_t i, n = msg_entry_count(m)
    cdef Py_ssize_t nctx = PyBytes_GET_SIZE(m.context)
    cdef uint8_t flags = 0
    if m.reject:
        flags |= FLAG_REJECT
    if m.snapshot is not None:
        flags |= FLAG_SNAPSHOT
    p[0] = <char>m.type
    p[1] = <char>flags
    er_store_u64(p + 2, m.to)
    er_store_u64(p + 10, m.frm)
    er_store_u64(p + 18, m.term)
    er_store_u64(p + 26, m.log_term)
    er_store_u64(p + 34, m.index)
    er_store_u64(p + 42, m.commit)
    er_store_u64(p + 50, m.reject_hint)
    er_store_u32(p + 58, <uint32_t>nctx)
    p += 62
    if nctx:
        memcpy(p, PyBytes_AS_STRING(m.context), nctx)
        p += nctx
    er_store_u32(p, <uint32_t>n)
    p += 4
    for i in range(n):
        p = write_entry(p, <Entry>PyList_GET_ITEM(m._entries, i))
    if m.snapshot is not None:
        er_store_u64(p, m.snapshot.metadata.index)
        er_store_u64(p + 8, m.snapshot.metadata.term)
        p = _write_conf_state(p + 16, m.snapshot.metadata.conf_state)
        n = len(m.snapshot.data)
        er_store_u64(p, <uint64_t>n)
        memcpy(p + 8, PyBytes_AS_STRING(m.snapshot.data), n)
        p += 8 + n
    return p


cdef Py_ssize_t checked_message_size(Message m) except -1:
    # Fields are public, so a caller may have stored None where bytes/list
    # go, or anything in the entry list: check while sizing, in one walk.
    cdef Py_ssize_t i, n, size, ds
    cdef PyObject *e
    if m.context is None:
        raise TypeError("codec: message context must not be None")
    if m.type >= MSG_TYPE_COUNT:    # a public uint8_t: Python may store any byte there
        raise CodecError(f"codec: unknown message type {m.type}")
    n = msg_entry_count(m)
    size = PyBytes_GET_SIZE(m.context)
    if size > ER_U32_MAX or n > ER_U32_MAX:
        raise CodecError("codec: message context or entry list too large to encode")
    size += MESSAGE_HEADER_SIZE
    for i in range(n):
        e = PyList_GET_ITEM(m._entries, i)
        # Entry is final: an exact type check is enough and costs no MRO walk.
        if type(<object>e) is not Entry:
            raise TypeError(f"codec: message entries must be Entry, got "
                            f"{(<object>e).__class__.__name__}")
        ds = PyBytes_GET_SIZE((<Entry>e).data)
        if ds > ER_U32_MAX:
            raise CodecError("codec: entry data larger than 4 GiB cannot be encoded")
        size += ENTRY_HEADER_SIZE + ds
    if m.snapshot is not None:
        size += 16 + _conf_state_size(m.snapshot.metadata.conf_state) + 8 + len(m.snapshot.data)
    return size


cdef int check_message(Message m) except -1:
    checked_message_size(m)
    return 0


# --- buffer access ---------------------------------------------------------

cdef inline int _open(object data, Py_buffer *view, Reader *r) except -1:
    PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    r.buf = <const char *>view.buf
    r.len = view.len
    r.pos = 0
    return 0


cdef inline int _expect_end(Reader *r, const char *what) except -1:
    if r.pos != r.len:
        raise CodecError(f"codec: {r.len - r.pos} trailing bytes after {what.decode()}")
    return 0


# --- public entry points ---------------------------------------------------

def encode_entry(Entry e not None):
    """Return the binary form of one entry."""
    if PyBytes_GET_SIZE(e.data) > ER_U32_MAX:
        raise CodecError("codec: entry data larger than 4 GiB cannot be encoded")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, entry_size(e))
    write_entry(PyBytes_AS_STRING(out), e)
    return out


def decode_entry(object data):
    """Parse one entry; CodecError if the bytes are not exactly one entry."""
    cdef Py_buffer view
    cdef Reader r
    _open(data, &view, &r)
    try:
        e = read_entry(&r)
        _expect_end(&r, b"entry")
        return e
    finally:
        PyBuffer_Release(&view)


def encode_hard_state(HardState hs not None):
    """Return the 24-byte binary form of a hard state."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, HARD_STATE_SIZE)
    cdef char *p = PyBytes_AS_STRING(out)
    er_store_u64(p, hs.term)
    er_store_u64(p + 8, hs.vote)
    er_store_u64(p + 16, hs.commit)
    return out


def decode_hard_state(object data):
    """Parse a hard state; CodecError unless the input is exactly 24 bytes."""
    cdef Py_buffer view
    cdef Reader r
    cdef uint64_t term, vote, commit
    _open(data, &view, &r)
    try:
        if r.len != HARD_STATE_SIZE:
            raise CodecError(f"codec: hard state must be {HARD_STATE_SIZE} bytes, got {r.len}")
        # One statement per field: C leaves argument evaluation order open.
        term = _u64(&r)
        vote = _u64(&r)
        commit = _u64(&r)
        return HardState.new(term, vote, commit)
    finally:
        PyBuffer_Release(&view)


def encode_snapshot_metadata(SnapshotMetadata meta not None):
    """Return the binary form of snapshot metadata (index, term, conf state)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 16 + _conf_state_size(meta.conf_state))
    cdef char *p = PyBytes_AS_STRING(out)
    er_store_u64(p, meta.index)
    er_store_u64(p + 8, meta.term)
    _write_conf_state(p + 16, meta.conf_state)
    return out


def decode_snapshot_metadata(object data):
    """Parse what encode_snapshot_metadata produced."""
    cdef Py_buffer view
    cdef Reader r
    _open(data, &view, &r)
    try:
        meta = _read_snapshot_metadata(&r)
        _expect_end(&r, b"snapshot metadata")
        return meta
    finally:
        PyBuffer_Release(&view)


def encode_conf_state(ConfState cs not None):
    """Return the binary form of a conf state."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, _conf_state_size(cs))
    _write_conf_state(PyBytes_AS_STRING(out), cs)
    return out


def decode_conf_state(object data):
    """Parse what encode_conf_state produced."""
    cdef Py_buffer view
    cdef Reader r
    _open(data, &view, &r)
    try:
        cs = _read_conf_state(&r)
        _expect_end(&r, b"conf state")
        return cs
    finally:
        PyBuffer_Release(&view)


def encode_message(Message m not None):
    """Return the binary form of one message."""
    check_message(m)
    cdef Py_ssize_t size = message_size(m)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    write_message(PyBytes_AS_STRING(out), m)
    return out


def decode_message(object data):
    """Parse one message; CodecError if the bytes are not exactly one message."""
    cdef Py_buffer view
    cdef Reader r
    _open(data, &view, &r)
    try:
        m = read_message(&r)
        _expect_end(&r, b"message")
        return m
    finally:
        PyBuffer_Release(&view)


def encode_frames(list messages not None):
    """Encode messages as consecutive frames (u32 length + message): one
    buffer for one socket write."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(messages), total = 0, size
    cdef Message m
    for i in range(n):
        item = messages[i]
        if not isinstance(item, Message):
            raise TypeError(f"codec: encode_frames needs Message items, got {type(item).__name__}")
        m = <Message>item
        check_message(m)
        size = message_size(m)
        if size > ER_U32_MAX:
            raise CodecError(f"codec: message of {size} bytes exceeds the frame limit")
        total += FRAME_PREFIX_SIZE + size
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *p = PyBytes_AS_STRING(out)
    cdef char *end
    for i in range(n):
        m = <Message>PyList_GET_ITEM(messages, i)
        end = write_message(p + FRAME_PREFIX_SIZE, m)
        er_store_u32(p, <uint32_t>(end - p - FRAME_PREFIX_SIZE))
        p = end
    return out


def decode_frames(object data, Py_ssize_t max_frame=DEFAULT_MAX_FRAME):
    """Parse the complete frames at the start of `data`.

    Returns ``(messages, consumed)``: the decoded messages and how many bytes
    they used; an incomplete frame at the end is left for the next call.
    Raises FrameTooLargeError when a length prefix exceeds `max_frame`
    (before waiting for, or allocating, its body) and CodecError on a
    malformed frame.
    """
    cdef Py_buffer view
    cdef Reader r, fr
    cdef uint32_t n
    cdef list out = []
    _open(data, &view, &r)
    try:
        while r.len - r.pos >= FRAME_PREFIX_SIZE:
            n = er_load_u32(r.buf + r.pos)
            if <Py_ssize_t>n > max_frame:
                raise FrameTooLargeError(
                    f"codec: frame of {n} bytes at offset {r.pos} exceeds limit {max_frame}")
            if r.len - r.pos - FRAME_PREFIX_SIZE < <Py_ssize_t>n:
                break
            fr.buf = r.buf + r.pos + FRAME_PREFIX_SIZE
            fr.len = n
            fr.pos = 0
            out.append(read_message(&fr))
            _expect_end(&fr, b"message frame")
            r.pos += FRAME_PREFIX_SIZE + n
        return out, r.pos
    finally:
        PyBuffer_Release(&view)
