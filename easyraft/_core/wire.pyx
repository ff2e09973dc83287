# Per-batch helpers for the peer transport (etcd: rafthttp's msgappv2 codec
# counters and snapshot reader), kept in compiled code because they touch
# every message or every snapshot byte.
#
# - tally(): one pass over a decoded or to-be-encoded batch that checks the
#   routing fields and adds per-type message counts and encoded sizes to the
#   caller's counters, so metrics cost no Python loop per message.
# - SnapshotBuffer: receives a streamed snapshot into one bytes object grown
#   in place, so the receiver holds the snapshot once (never a list of chunks
#   plus their join, which needs twice the memory at the end).
#
# No I/O here; the transport above owns sockets, clocks and logging.
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, _PyBytes_Resize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_XINCREF, Py_XDECREF
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from easyraft._core.types cimport Message, MsgSnap, MSG_TYPE_COUNT
from easyraft._core.codec cimport message_size, FRAME_PREFIX_SIZE

# Counter arrays passed to tally() hold one slot per MsgType value.
TYPE_COUNT = MSG_TYPE_COUNT


@cython.boundscheck(False)
@cython.wraparound(False)
def tally(list messages, uint64_t[::1] counts, uint64_t[::1] nbytes,
          uint64_t frm=0, uint64_t to=0, bint allow_snap=True):
    """Add each message's count and framed size to counts/nbytes by type.

    When frm/to are non-zero, stop at the first message whose frm/to differ
    (a peer may only speak for itself, to the node its stream was opened
    for), or that is a MsgSnap while allow_snap is false, and return its
    position; return -1 when the whole batch passed. Messages before the
    returned position are counted.
    """
    # Indexing is safe without checks: m.type < MSG_TYPE_COUNT is enforced
    # by Message.__init__ and the decoder, and both arrays are checked here.
    if counts.shape[0] < MSG_TYPE_COUNT or nbytes.shape[0] < MSG_TYPE_COUNT:
        raise ValueError("transport: counter arrays need one slot per message type")
    cdef Py_ssize_t i, n = PyList_GET_SIZE(messages)
    cdef Message m
    for i in range(n):
        m = <Message?>PyList_GET_ITEM(messages, i)
        if frm and m.frm != frm:
            return i
        if to and m.to != to:
            return i
        if not allow_snap and m.type == MsgSnap:
            return i
        counts[m.type] += 1
        nbytes[m.type] += <uint64_t>(message_size(m) + FRAME_PREFIX_SIZE)
    return -1


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
