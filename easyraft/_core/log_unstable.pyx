"""Unstable log: what raft has accepted but storage has not (etcd: log_unstable.go)."""
cimport cython
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from libc.stdint cimport uint64_t

from easyraft._core.types cimport Entry, Snapshot


@cython.final
cdef class Unstable:
    def __cinit__(self):
        self.snapshot = None
        self.entries = []
        self.offset = 0

    cdef bint maybe_first_index(self, uint64_t *out) noexcept:
        # Only a pending snapshot tells us the first index; otherwise storage does.
        if self.snapshot is not None:
            out[0] = self.snapshot.metadata.index + 1
            return True
        return False

    cdef bint maybe_last_index(self, uint64_t *out) noexcept:
        cdef Py_ssize_t n = PyList_GET_SIZE(self.entries)
        if n:
            out[0] = self.offset + <uint64_t>n - 1
            return True
        if self.snapshot is not None:
            out[0] = self.snapshot.metadata.index
            return True
        return False

    cdef bint maybe_term(self, uint64_t i, uint64_t *out) noexcept:
        cdef uint64_t last
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                out[0] = self.snapshot.metadata.term
                return True
            return False
        if not self.maybe_last_index(&last) or i > last:
            return False
        if PyList_GET_SIZE(self.entries) == 0:
            # last came from the snapshot and i == offset == snapshot index + 1 > last
            return False
        out[0] = (<Entry>PyList_GET_ITEM(self.entries, <Py_ssize_t>(i - self.offset))).term
        return True

    cdef void stable_to(self, uint64_t i, uint64_t t):
        # Entries up to (i, t) reached storage. If the term no longer matches,
        # a newer leader replaced them meanwhile: keep them unstable.
        cdef uint64_t gt = 0
        if not self.maybe_term(i, &gt):
            return
        if gt == t and i >= self.offset:
            del self.entries[:<Py_ssize_t>(i + 1 - self.offset)]
            self.offset = i + 1

    cdef void stable_snap_to(self, uint64_t i):
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    cdef void restore(self, Snapshot s):
        self.offset = s.metadata.index + 1
        self.entries = []
        self.snapshot = s

    cdef int truncate_and_append(self, list ents) except -1:
        cdef uint64_t after = (<Entry>PyList_GET_ITEM(ents, 0)).index
        cdef uint64_t end = self.offset + <uint64_t>PyList_GET_SIZE(self.entries)
        if after == end:
            # The common case: ents directly follow what we hold.
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replace everything, and tell storage to truncate at `after`.
            self.offset = after
            self.entries = list(ents)
        else:
            # Truncate to after, then append.
            self.entries = self.entries[:<Py_ssize_t>(after - self.offset)]
            self.entries.extend(ents)
        return 0

    cdef list slice(self, uint64_t lo, uint64_t hi):
        # Caller guarantees offset <= lo <= hi <= offset + len(entries).
        return self.entries[<Py_ssize_t>(lo - self.offset):<Py_ssize_t>(hi - self.offset)]
