# Entries and a snapshot not yet written to stable storage
# (etcd: log_unstable.go, before async storage writes).
from libc.stdint cimport uint64_t
from easyraft._core.types cimport Entry, Snapshot

cdef class Unstable:
    # The incoming snapshot, if any, not yet persisted.
    cdef Snapshot snapshot
    # entries[i] has raft log position i + offset. The Entry objects are
    # shared with outgoing messages, never mutated after append.
    cdef list entries
    # Invariant: offset may be less than the highest log position in
    # storage; then the next storage write truncates the log there.
    cdef uint64_t offset

    cdef bint maybe_first_index(self, uint64_t *out) noexcept
    cdef bint maybe_last_index(self, uint64_t *out) noexcept
    cdef bint maybe_term(self, uint64_t i, uint64_t *out) noexcept
    cdef void stable_to(self, uint64_t i, uint64_t t)
    cdef void stable_snap_to(self, uint64_t i)
    cdef void restore(self, Snapshot s)
    cdef int truncate_and_append(self, list ents) except -1
    cdef list slice(self, uint64_t lo, uint64_t hi)
