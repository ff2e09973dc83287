"""In-memory raft log storage (etcd: storage.go MemoryStorage)."""
cimport cython
from cpython.mem cimport PyMem_Realloc, PyMem_Free, PyMem_Malloc
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from libc.stdint cimport uint8_t, uint64_t, UINT64_MAX
from libc.string cimport memmove

from easyraft._core.types cimport (Entry, HardState, Snapshot, SnapshotMetadata, ConfState,
                                   entry_wire_size, EntryNormal, EntryConfChange)
from easyraft._core.types import (CompactedError, UnavailableError, SnapOutOfDateError,
                                  RaftError)

DEF MIN_CAPACITY = 64


cdef list limit_size(list ents, uint64_t max_size):
    cdef Py_ssize_t n = PyList_GET_SIZE(ents), limit
    cdef uint64_t size
    if n == 0 or max_size == UINT64_MAX:
        return ents
    size = entry_wire_size(<Entry>PyList_GET_ITEM(ents, 0))
    limit = 1
    while limit < n:
        size += entry_wire_size(<Entry>PyList_GET_ITEM(ents, limit))
        if size > max_size:
            break
        limit += 1
    if limit == n:
        return ents
    return ents[:limit]


cdef inline uint64_t _max_size_arg(object max_size) except? 0:
    if max_size is None:
        return UINT64_MAX
    if max_size < 0:
        raise ValueError(f"raft: max_size must be >= 0, got {max_size}")
    return max_size


@cython.final
cdef class MemoryStorage:
    """The raft log kept in memory; the durable copy is the WAL above it.

    Not thread-safe: use it from one thread (the node's loop).
    """

    def __cinit__(self):
        self.capacity = MIN_CAPACITY
        self.terms = <uint64_t *>PyMem_Malloc(self.capacity * sizeof(uint64_t))
        self.types = <uint8_t *>PyMem_Malloc(self.capacity * sizeof(uint8_t))
        if self.terms == NULL or self.types == NULL:
            raise MemoryError()
        self.offset = 0
        self.terms[0] = 0
        self.types[0] = EntryNormal
        self.datas = [b""]
        self.length = 1
        self.hard_state = HardState.new(0, 0, 0)
        self.snap = Snapshot.new(b"", SnapshotMetadata.new(0, 0, ConfState.new((), ())))

    def __dealloc__(self):
        PyMem_Free(self.terms)
        PyMem_Free(self.types)

    cdef int _reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self.capacity
        cdef uint64_t *t
        cdef uint8_t *y
        if n <= cap:
            return 0
        while cap < n:
            cap *= 2
        t = <uint64_t *>PyMem_Realloc(self.terms, cap * sizeof(uint64_t))
        if t == NULL:
            raise MemoryError()
        self.terms = t
        y = <uint8_t *>PyMem_Realloc(self.types, cap * sizeof(uint8_t))
        if y == NULL:
            raise MemoryError()
        self.types = y
        self.capacity = cap
        return 0

    # --- reads (the Storage interface) ---------------------------------

    cdef uint64_t c_first_index(self) noexcept:
        return self.offset + 1

    cdef uint64_t c_last_index(self) noexcept:
        return self.offset + <uint64_t>self.length - 1

    cdef int c_term(self, uint64_t i, uint64_t *out) noexcept:
        if i < self.offset:
            return TERM_COMPACTED
        if i - self.offset >= <uint64_t>self.length:
            return TERM_UNAVAILABLE
        out[0] = self.terms[i - self.offset]
        return TERM_OK

    cdef list c_entries(self, uint64_t lo, uint64_t hi, uint64_t max_size):
        # Entries in [lo, hi), at least one if any, total size <= max_size.
        cdef Py_ssize_t i, start, end
        cdef uint64_t size = 0
        cdef list out
        cdef bytes data
        cdef Entry e
        if lo <= self.offset:
            raise CompactedError(f"raft: requested index {lo} is unavailable due to compaction")
        if hi > self.c_last_index() + 1:
            raise UnavailableError(f"raft: entries' hi({hi}) is out of bound lastindex({self.c_last_index()})")
        if self.length == 1:
            raise UnavailableError("raft: requested entry at index is unavailable")
        start = <Py_ssize_t>(lo - self.offset)
        end = <Py_ssize_t>(hi - self.offset)
        out = []
        for i in range(start, end):
            data = <bytes>PyList_GET_ITEM(self.datas, i)
            e = Entry.new(self.terms[i], self.offset + i, self.types[i], data)
            if i > start:
                size += entry_wire_size(e)
                if size > max_size:
                    break
            else:
                size = entry_wire_size(e)
            out.append(e)
        return out

    def initial_state(self):
        """Return (HardState, ConfState) saved before a restart."""
        return self.hard_state, self.snap.metadata.conf_state

    def entries(self, uint64_t lo, uint64_t hi, max_size=None):
        """Return entries in [lo, hi), limited to max_size bytes (at least one)."""
        if lo > hi:
            raise ValueError(f"raft: invalid slice {lo} > {hi}")
        return self.c_entries(lo, hi, _max_size_arg(max_size))

    def term(self, uint64_t i):
        """Return the term of entry i (i in [first_index()-1, last_index()])."""
        cdef uint64_t t = 0
        cdef int rc = self.c_term(i, &t)
        if rc == TERM_COMPACTED:
            raise CompactedError(f"raft: requested index {i} is unavailable due to compaction")
        if rc == TERM_UNAVAILABLE:
            raise UnavailableError(f"raft: requested entry at index {i} is unavailable")
        return t

    def first_index(self):
        return self.c_first_index()

    def last_index(self):
        return self.c_last_index()

    def snapshot(self):
        """Return the most recent snapshot."""
        return self.snap

    # --- writes (by the node, from Ready) ------------------------------

    def set_hard_state(self, HardState hs not None):
        self.hard_state = hs

    def append(self, entries):
        """Append entries, truncating any conflicting suffix first.

        entries must be contiguous and start at or before last_index()+1.
        """
        if not isinstance(entries, list):
            entries = list(entries)
        # Checked before any change, so a bad item cannot leave the log cut short.
        for e in entries:
            if type(e) is not Entry:
                raise TypeError(f"storage: append() needs Entry items, got {type(e).__name__}")
        self.c_append(entries)

    cdef int c_append(self, list entries) except -1:
        cdef Py_ssize_t n = PyList_GET_SIZE(entries), i, k, skip, at
        cdef Entry e, first
        cdef uint64_t first_index, last
        if n == 0:
            return 0
        first = <Entry?><object>PyList_GET_ITEM(entries, 0)
        first_index = self.c_first_index()
        last = first.index + <uint64_t>n - 1
        # Shortcut if there is no new entry.
        if last < first_index:
            return 0
        # Truncate compacted entries.
        skip = 0
        if first_index > first.index:
            skip = <Py_ssize_t>(first_index - first.index)
        first = <Entry?><object>PyList_GET_ITEM(entries, skip)
        at = <Py_ssize_t>(first.index - self.offset)
        if at > self.length:
            raise RaftError(f"raft: missing log entry [last: {self.c_last_index()}, "
                            f"append at: {first.index}]")
        # Conflicting suffix [at, length) is dropped.
        if at < self.length:
            del self.datas[at:]
            self.length = at
        self._reserve(self.length + n - skip)
        k = self.length
        for i in range(skip, n):
            e = <Entry?><object>PyList_GET_ITEM(entries, i)
            if e.index != self.offset + <uint64_t>k:
                raise RaftError(f"raft: appended entries are not contiguous at index {e.index}")
            self.terms[k] = e.term
            self.types[k] = e.type
            self.datas.append(e.data)
            k += 1
        self.length = k
        return 0

    def apply_snapshot(self, Snapshot snap not None):
        """Replace the log with the snapshot's position (a follower catching up)."""
        if self.snap.metadata.index >= snap.metadata.index:
            raise SnapOutOfDateError(
                f"raft: requested snapshot index {snap.metadata.index} is older than the "
                f"existing snapshot {self.snap.metadata.index}")
        self.snap = snap
        self.offset = snap.metadata.index
        self.terms[0] = snap.metadata.term
        self.types[0] = EntryNormal
        self.datas = [b""]
        self.length = 1

    def create_snapshot(self, uint64_t index, ConfState conf_state=None, data=b""):
        """Record a snapshot of the state machine at `index` and return it.

        Log entries are kept; call compact() to drop them.
        """
        cdef uint64_t t = 0
        if index <= self.snap.metadata.index:
            raise SnapOutOfDateError(
                f"raft: requested snapshot index {index} is older than the existing "
                f"snapshot {self.snap.metadata.index}")
        if index > self.c_last_index():
            raise UnavailableError(f"raft: snapshot {index} is out of bound lastindex({self.c_last_index()})")
        self.c_term(index, &t)
        if conf_state is None:
            conf_state = self.snap.metadata.conf_state
        self.snap = Snapshot.new(bytes(data), SnapshotMetadata.new(index, t, conf_state))
        return self.snap

    def compact(self, uint64_t compact_index):
        """Discard entries before compact_index; it becomes the new dummy."""
        cdef Py_ssize_t i, keep
        if compact_index <= self.offset:
            raise CompactedError(f"raft: requested index {compact_index} is unavailable due to compaction")
        if compact_index > self.c_last_index():
            raise UnavailableError(f"raft: compact {compact_index} is out of bound lastindex({self.c_last_index()})")
        i = <Py_ssize_t>(compact_index - self.offset)
        keep = self.length - i
        memmove(self.terms, self.terms + i, keep * sizeof(uint64_t))
        memmove(self.types, self.types + i, keep * sizeof(uint8_t))
        del self.datas[:i]
        self.datas[0] = b""
        self.types[0] = EntryNormal
        self.offset = compact_index
        self.length = keep

    def __len__(self):
        """Number of entries held (excluding the dummy)."""
        return self.length - 1

    def memory_per_entry(self):
        """Bytes of bookkeeping per held entry beyond its payload object:
        one term (8), one type (1) and one list slot (8)."""
        return sizeof(uint64_t) + sizeof(uint8_t) + sizeof(void *)
