# Per-batch helpers for the peer transport (etcd: rafthttp's msgappv2 codec
# counters and snapshot reader), kept in compiled code because they touch
# every message or every snapshot byte.
#
# - tally() / FrameQueue: per-type message and byte counts into a Counters
#   object while checking routing fields (receive side) or while encoding
#   the frames a stream will write (send side), so metrics cost no Python
#   loop and no second pass per message.
# - group_by_to(): split a Ready's messages by destination peer.
# - FrameReader: the receive buffer of a stream, decoding frames in place.
# - SnapshotBuffer: receives a streamed snapshot into one bytes object grown
#   in place, so the receiver holds the snapshot once (never a list of chunks
#   plus their join, which needs twice the memory at the end).
#
# No I/O here; the transport above owns sockets, clocks and logging.
cimport cython
from cpython.bytes cimport (PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_AS_STRING,
                            PyBytes_GET_SIZE, _PyBytes_Resize)
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.object cimport PyObject, PyTypeObject, Py_TYPE
from cpython.ref cimport Py_XINCREF, Py_XDECREF
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove, memset

from easyraft._core.types cimport Entry, Message, MsgSnap, MSG_TYPE_COUNT
from easyraft._core.codec cimport (checked_message_size, message_size, read_message, write_message,
                                  Reader, er_load_u32, er_store_u32, ER_U32_MAX,
                                  MESSAGE_HEADER_SIZE, FRAME_PREFIX_SIZE)
from easyraft._core.types import CodecError, FrameTooLargeError

# One counter slot per MsgType value.
TYPE_COUNT = MSG_TYPE_COUNT


cdef inline int _check_is_message(PyObject *o) except -1:
    # Message is final: an exact type check, on a borrowed item (no refcount).
    if Py_TYPE(<object>o) is not <PyTypeObject *>Message:
        raise TypeError(f"transport: expected a Message, got {type(<object>o).__name__}")
    return 0


cdef inline int _check_type(uint8_t t) except -1:
    # Message.type is a public uint8_t: Python may have stored any byte there,
    # and it indexes the per-type counters.
    if t >= MSG_TYPE_COUNT:
        raise CodecError(f"transport: unknown message type {t}")
    return 0


@cython.final
cdef class Counters:
    """Messages and framed bytes by MsgType, for one direction of one peer.

    Plain C arrays, so tally()/FrameQueue add to them without acquiring
    a buffer per call; rows() is for the (rare) metrics scrape.
    """
    cdef uint64_t _msgs[MSG_TYPE_COUNT]     # messages counted, by type
    cdef uint64_t _bytes[MSG_TYPE_COUNT]    # their frames' bytes (prefix included)

    def __cinit__(self):
        memset(self._msgs, 0, sizeof(self._msgs))
        memset(self._bytes, 0, sizeof(self._bytes))

    def rows(self):
        """Return [(type, messages, bytes)] for every type seen, by type."""
        return [(i, self._msgs[i], self._bytes[i]) for i in range(MSG_TYPE_COUNT)
                if self._msgs[i]]

    @property
    def messages(self):
        return sum(self._msgs[i] for i in range(MSG_TYPE_COUNT))

    @property
    def bytes(self):
        return sum(self._bytes[i] for i in range(MSG_TYPE_COUNT))


def tally(list messages not None, Counters counters not None, uint64_t frm=0, uint64_t to=0,
          bint allow_snap=True):
    """Count each message and its framed size by type into counters.

    When frm/to are non-zero, stop at the first message whose frm/to differ
    (a peer may only speak for itself, to the node its stream was opened
    for), or that is a MsgSnap while allow_snap is false, and return its
    position; return -1 when the whole batch passed. Messages before the
    returned position are counted.
    """
    cdef Py_ssize_t i, n = PyList_GET_SIZE(messages)
    cdef Message m
    for i in range(n):
        m = <Message?><object>PyList_GET_ITEM(messages, i)
        if frm and m.frm != frm:
            return i
        if to and m.to != to:
            return i
        if not allow_snap and m.type == MsgSnap:
            return i
        _check_type(m.type)     # it indexes the counters
        counters._msgs[m.type] += 1
        counters._bytes[m.type] += <uint64_t>(message_size(m) + FRAME_PREFIX_SIZE)
    return -1


# FrameQueue.push() remembers this many message sizes between its two passes
# (a Ready rarely holds more for one peer; later ones are sized again).
cdef enum:
    SIZE_CACHE = 256


@cython.final
cdef class FrameQueue:
    """Frames waiting to go out on one peer stream (etcd: a stream writer's msgc).

    push() encodes messages straight into one buffer as they are sent, so a
    flush is a single write of bytes already framed, nothing per message is
    left to do then, and no Message outlives the send() that queued it.
    take() hands the buffer over (no copy) and counts its frames into the
    stream's sent Counters; clear() discards it when the link goes down, so
    messages never sent are never counted as sent.

    Bounded by a message count (`limit`): what does not fit is left out and
    reported to the caller, which drops it (raft retransmits). A message
    whose frame would exceed `max_frame` is left out too, into `oversized`,
    because the receiver would close the stream on it (413), costing every
    message behind it.
    """
    cdef object _buf            # bytes being filled (refcount 1), or None
    cdef Py_ssize_t _used       # bytes of complete frames in _buf
    cdef Py_ssize_t _cap        # len(_buf); 0 when _buf is None
    cdef Py_ssize_t _count      # messages queued
    cdef Py_ssize_t _limit
    cdef Py_ssize_t _max_frame
    cdef list _oversized        # left out for size since take_oversized(); None if none
    cdef uint64_t _msgs[MSG_TYPE_COUNT]     # queued, by type: moved into Counters by take()
    cdef uint64_t _bytes[MSG_TYPE_COUNT]

    def __cinit__(self, Py_ssize_t limit, Py_ssize_t max_frame):
        if limit <= 0 or max_frame <= 0:
            raise ValueError("transport: frame queue limit and max_frame must be positive")
        self._limit = limit
        self._max_frame = max_frame
        self._buf = None
        self._used = self._cap = self._count = 0
        memset(self._msgs, 0, sizeof(self._msgs))
        memset(self._bytes, 0, sizeof(self._bytes))

    def __len__(self):
        return self._count

    @property
    def nbytes(self):
        """Bytes queued (complete frames, prefixes included)."""
        return self._used

    cdef inline bint _fits(self, Py_ssize_t size) noexcept:
        return size <= self._max_frame and size <= ER_U32_MAX

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        # Exact size for the first push after a take (the usual one push per
        # flush needs no resize at all), doubling after that.
        cdef Py_ssize_t need = self._used + extra, cap
        cdef PyObject *p
        if need <= self._cap:
            return 0
        if self._buf is None:
            self._buf = PyBytes_FromStringAndSize(NULL, need)
            self._cap = need
            return 0
        cap = max(need, 2 * self._cap)
        # _PyBytes_Resize needs the only reference: move ours into p.
        p = <PyObject *>self._buf
        Py_XINCREF(p)
        self._buf = None
        self._cap = 0
        try:
            _PyBytes_Resize(&p, cap)    # on failure p is freed and we raise
        except MemoryError:
            self.clear()                # the queued frames went with p
            raise
        self._buf = <object>p       # takes its own reference...
        Py_XDECREF(p)               # ...so drop the one p held
        self._cap = cap
        return 0

    cpdef Py_ssize_t push(self, list messages) except -1:
        """Queue messages in order; return how many were left out (queue full or oversized).

        Raises TypeError/CodecError for a message that cannot be encoded,
        before queueing any message of the batch.
        """
        cdef Py_ssize_t i, n, size, total = 0, accepted = 0, stop, oversized = 0
        cdef Py_ssize_t room = self._limit - self._count
        cdef Py_ssize_t sizes[SIZE_CACHE]  # pass 1's sizes, for pass 2
        cdef PyObject *o
        cdef uint8_t t
        cdef Message m
        cdef char *p
        cdef char *end
        if messages is None:
            raise TypeError("transport: push() needs a list of messages")
        n = PyList_GET_SIZE(messages)
        # Pass 1 checks and sizes; pass 2 writes by the same rules. Nothing
        # between them allocates a GC object, so no finalizer can run and
        # change the list: pass 2 may trust pass 1's types and sizes.
        stop = n
        for i in range(n):
            o = PyList_GET_ITEM(messages, i)     # borrowed: the list keeps it alive
            _check_is_message(o)
            _check_type((<Message>o).type)
            if ((<Message>o)._entries is None and (<Message>o).snapshot is None
                    and PyBytes_CheckExact((<Message>o).context)
                    and PyBytes_GET_SIZE((<Message>o).context) == 0):
                size = MESSAGE_HEADER_SIZE     # most messages: heartbeats, votes, responses
            else:
                size = checked_message_size(<Message>o)
            if i < SIZE_CACHE:
                sizes[i] = size
            if not self._fits(size):
                continue
            if accepted == room:
                stop = i
                break
            accepted += 1
            total += FRAME_PREFIX_SIZE + size
        if total:
            self._reserve(total)
            p = PyBytes_AS_STRING(self._buf) + self._used
            for i in range(stop):
                o = PyList_GET_ITEM(messages, i)
                size = sizes[i] if i < SIZE_CACHE else message_size(<Message>o)
                if not self._fits(size):
                    continue
                end = write_message(p + FRAME_PREFIX_SIZE, <Message>o)
                er_store_u32(p, <uint32_t>size)
                p = end
                t = (<Message>o).type
                self._msgs[t] += 1
                self._bytes[t] += <uint64_t>(FRAME_PREFIX_SIZE + size)
        self._used += total
        self._count += accepted
        if accepted < stop:
            # Rare: collect what was too large, now that the queue is
            # consistent. Appending may run a finalizer that changes the
            # list, so the bound and every item are checked again, and a
            # message that changed into something unencodable is skipped.
            i = 0
            while i < stop and i < PyList_GET_SIZE(messages):
                m = <Message?><object>PyList_GET_ITEM(messages, i)
                i += 1
                try:
                    size = checked_message_size(m)
                except (TypeError, CodecError):
                    continue
                if not self._fits(size):
                    if self._oversized is None:
                        self._oversized = []
                    self._oversized.append(m)
        return n - accepted

    def take_oversized(self):
        """Return (and forget) the messages left out for their size since the last call."""
        out = self._oversized if self._oversized is not None else []
        self._oversized = None
        return out

    def take(self, Counters sent not None):
        """Return every queued frame as one bytes object (None if empty), counted into sent."""
        cdef Py_ssize_t i, used = self._used, cap = self._cap
        cdef PyObject *p
        if self._count == 0:
            return None
        p = <PyObject *>self._buf
        Py_XINCREF(p)
        self._buf = None
        self._used = self._cap = self._count = 0
        if used < cap:
            try:
                _PyBytes_Resize(&p, used)   # shrinks in place; on failure p is freed
            except MemoryError:
                self.clear()                # the frames are lost, not sent
                raise
        for i in range(MSG_TYPE_COUNT):
            sent._msgs[i] += self._msgs[i]
            sent._bytes[i] += self._bytes[i]
        memset(self._msgs, 0, sizeof(self._msgs))
        memset(self._bytes, 0, sizeof(self._bytes))
        out = <object>p
        Py_XDECREF(p)
        return out

    def clear(self):
        """Discard everything queued; return how many messages that was."""
        cdef Py_ssize_t n = self._count
        self._buf = None
        self._used = self._cap = self._count = 0
        memset(self._msgs, 0, sizeof(self._msgs))
        memset(self._bytes, 0, sizeof(self._bytes))
        return n


@cython.final
cdef class SnapshotBuffer:
    """Collect exactly `size` bytes, written in order, into one bytes object.

    Capacity starts small and doubles (up to `size`) as data arrives, so a
    peer that announces a huge snapshot and sends little costs little memory;
    growing uses realloc, which glibc serves with mremap for large blocks, so
    growth does not copy and the snapshot is held once.
    """
    cdef object _buf        # bytes being filled; refcount 1 until finish()
    cdef Py_ssize_t _size   # announced total
    cdef Py_ssize_t _pos    # bytes written; invariant: 0 <= _pos <= capacity <= _size
    cdef Py_ssize_t _cap

    def __cinit__(self, Py_ssize_t size, Py_ssize_t initial=1 << 20):
        if size < 0:
            raise ValueError("transport: snapshot size must not be negative")
        self._size = size
        self._cap = min(size, max(initial, 1))
        self._buf = PyBytes_FromStringAndSize(NULL, self._cap)
        self._pos = 0

    @property
    def size(self):
        return self._size

    @property
    def written(self):
        return self._pos

    def write(self, data):
        """Append data; ValueError if it would go past the announced size."""
        cdef Py_buffer view
        cdef Py_ssize_t need, cap
        cdef PyObject *p
        if self._buf is None:
            raise ValueError("transport: snapshot buffer already finished")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if view.len > self._size - self._pos:
                raise ValueError(f"transport: snapshot data exceeds its announced "
                                 f"size of {self._size} bytes")
            need = self._pos + view.len
            if need > self._cap:
                cap = self._cap
                while cap < need:
                    cap = min(cap * 2, self._size)
                # _PyBytes_Resize needs the only reference: move ours into p.
                p = <PyObject *>self._buf
                Py_XINCREF(p)
                self._buf = None
                _PyBytes_Resize(&p, cap)    # on failure p is freed and we raise
                self._buf = <object>p       # takes its own reference...
                Py_XDECREF(p)               # ...so drop the one p held
                self._cap = cap
            memcpy(PyBytes_AS_STRING(self._buf) + self._pos, view.buf, view.len)
            self._pos = need
        finally:
            PyBuffer_Release(&view)

    def finish(self):
        """Return the complete bytes; ValueError if any byte is missing."""
        if self._buf is None:
            raise ValueError("transport: snapshot buffer already finished")
        if self._pos != self._size:
            raise ValueError(f"transport: snapshot truncated: {self._pos} of "
                             f"{self._size} bytes received")
        out = self._buf
        self._buf = None
        return out


def single_destination(list messages not None):
    """Return the `to` shared by every message, or 0 if they go to several
    peers, include a MsgSnap, or the list is empty.

    The common Ready needs no grouping: a follower only ever talks to its
    leader, and a leader of two nodes to one follower.
    """
    cdef Py_ssize_t i, n = PyList_GET_SIZE(messages)
    cdef PyObject *o
    cdef uint64_t to = 0
    for i in range(n):
        o = PyList_GET_ITEM(messages, i)     # borrowed: the list keeps it alive
        _check_is_message(o)
        if (<Message>o).type == MsgSnap or (i and (<Message>o).to != to):
            return 0
        to = (<Message>o).to
    return to


def group_by_to(list messages not None):
    """Split a batch into ({to: [messages]}, [MsgSnap messages]), keeping order.

    The common Ready (every message to one peer, no snapshot) returns the
    input list itself as the only group: no copy, no Python loop.
    """
    cdef Py_ssize_t i, n = PyList_GET_SIZE(messages)
    cdef Message m
    cdef uint64_t first_to = 0
    cdef bint uniform = True
    cdef dict groups = {}
    cdef list snaps = []
    cdef list g
    for i in range(n):
        m = <Message?><object>PyList_GET_ITEM(messages, i)
        if m.type == MsgSnap:
            uniform = False
            break
        if i == 0:
            first_to = m.to
        elif m.to != first_to:
            uniform = False
            break
    if uniform:
        if n:
            groups[first_to] = messages
        return groups, snaps
    for i in range(n):
        m = <Message?><object>PyList_GET_ITEM(messages, i)
        if m.type == MsgSnap:
            snaps.append(m)
            continue
        key = m.to
        g = groups.get(key)
        if g is None:
            groups[key] = [m]
        else:
            g.append(m)
    return groups, snaps


# Bounds of one FrameReader batch (see _decode); a batch always holds at
# least one message, however large.
DEF MAX_BATCH = 256
DEF MAX_BATCH_BYTES = 64 * 1024


@cython.final
cdef class FrameReader:
    """Receive buffer and frame decoder for one inbound stream.

    Used from an asyncio.BufferedProtocol: the loop reads straight into
    get_buffer()'s memoryview, feed(n) decodes complete frames in place
    (checking that each is frm -> to and not a MsgSnap, and counting it into
    `counters`, when those are given),
    and a partial frame is moved to the front only when the buffer is full.
    This avoids the per-read bytes object and the bytearray concatenations
    of a data_received() design, which cost more than decoding for large
    MsgApp frames.

    Memory: the buffer starts at `initial` bytes and doubles only when a
    frame that passed the max_frame check does not fit, so a hostile length
    prefix costs nothing (FrameTooLargeError before any growth) and an
    honest large frame costs at most twice its size.
    """
    cdef bytearray _buf     # storage; capacity = len(_buf)
    cdef Py_ssize_t _start  # unread bytes are _buf[_start:_end]
    cdef Py_ssize_t _end    # invariant: 0 <= _start <= _end <= len(_buf)
    cdef Py_ssize_t _max_frame
    cdef Counters _counters # decoded messages are counted here (may be None)
    cdef uint64_t _frm      # when non-zero: every message must be frm -> to, not MsgSnap
    cdef uint64_t _to

    def __cinit__(self, Py_ssize_t max_frame, Py_ssize_t initial=256 * 1024,
                  Counters counters=None, uint64_t frm=0, uint64_t to=0):
        self._buf = bytearray(max(initial, 64))
        self._start = 0
        self._end = 0
        self._max_frame = max_frame
        self._counters = counters
        self._frm = frm
        self._to = to

    @property
    def pending(self):
        """Bytes received but not yet decoded (a partial frame)."""
        return self._end - self._start

    def get_buffer(self):
        """Return a writable memoryview of free space (never empty)."""
        cdef Py_ssize_t cap = len(self._buf), unread = self._end - self._start
        cdef bytearray nb
        # Compact when less than 1/8 is free (reads stay large), grow only
        # when the buffer is full of one partial frame that passed the size
        # check.
        if self._end == cap or (cap - self._end < cap // 8 and self._start > 0):
            if self._start > 0:
                memmove(<char *>self._buf, (<char *>self._buf) + self._start, unread)
            else:
                nb = bytearray(cap * 2)
                memcpy(<char *>nb, <char *>self._buf, unread)
                self._buf = nb
            self._start = 0
            self._end = unread
        return memoryview(self._buf)[self._end:]

    def feed(self, Py_ssize_t nbytes):
        """Account for nbytes written into the last get_buffer(); return the first batch.

        Call next_batch() until it returns an empty list to get the rest.
        """
        if nbytes < 0 or nbytes > len(self._buf) - self._end:
            raise ValueError("transport: feed() beyond the buffer")
        self._end += nbytes
        return self._decode()

    def next_batch(self):
        """Decode the next batch of complete frames already received ([] if none)."""
        return self._decode()

    def push(self, data):
        """Copy data in (bytes that arrived before the reader existed) and decode."""
        cdef Py_buffer view
        cdef list out = []
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        cdef Py_ssize_t off = 0, take
        try:
            while off < view.len:
                mv = self.get_buffer()
                take = min(len(mv), view.len - off)
                memcpy((<char *>self._buf) + self._end, (<char *>view.buf) + off, take)
                off += take
                batch = self.feed(take)
                while batch:
                    out.extend(batch)
                    batch = self._decode()
        finally:
            PyBuffer_Release(&view)
        return out

    cdef list _decode(self):
        cdef Reader r, fr
        cdef uint32_t n
        cdef Message m
        cdef list out = []
        r.buf = (<const char *>self._buf) + self._start
        r.len = self._end - self._start
        r.pos = 0
        # At most MAX_BATCH messages or MAX_BATCH_BYTES of frames per call:
        # a list of thousands of fresh Messages (or Entries) lets the cyclic
        # GC's young generations fill up while it is built (measured: 349
        # ns/msg for 3,500 heartbeats per list, 77 ns/msg for 128); the node
        # gets them in several process() calls instead.
        while (r.len - r.pos >= FRAME_PREFIX_SIZE and len(out) < MAX_BATCH
               and r.pos < MAX_BATCH_BYTES):
            n = er_load_u32(r.buf + r.pos)
            if <Py_ssize_t>n > self._max_frame:
                raise FrameTooLargeError(
                    f"codec: frame of {n} bytes exceeds limit {self._max_frame}")
            if r.len - r.pos - FRAME_PREFIX_SIZE < <Py_ssize_t>n:
                break
            fr.buf = r.buf + r.pos + FRAME_PREFIX_SIZE
            fr.len = n
            fr.pos = 0
            m = read_message(&fr)
            if fr.pos != fr.len:
                raise CodecError(f"codec: {fr.len - fr.pos} trailing bytes after message frame")
            # Routing is checked here, while decoding, so that a misrouted
            # batch fails whole and counting needs no second pass (the frame
            # length is the framed size).
            if self._frm and (m.frm != self._frm or m.to != self._to or m.type == MsgSnap):
                raise CodecError(f"transport: message type {m.type} from {m.frm} to {m.to} "
                                 f"does not belong on stream {self._frm}->{self._to}")
            if self._counters is not None:
                self._counters._msgs[m.type] += 1
                self._counters._bytes[m.type] += FRAME_PREFIX_SIZE + n
            out.append(m)
            r.pos += FRAME_PREFIX_SIZE + n
        self._start += r.pos
        if self._start == self._end:
            self._start = self._end = 0
        return out
