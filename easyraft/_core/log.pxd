# The raft log: stable storage + unstable tail (etcd: log.go).
from libc.stdint cimport uint64_t
from easyraft._core.storage cimport MemoryStorage
from easyraft._core.log_unstable cimport Unstable
from easyraft._core.types cimport Entry, Snapshot

cdef class RaftLog:
    # Everything persisted since the last snapshot.
    cdef MemoryStorage storage
    # Everything not yet persisted; the log's tail.
    cdef Unstable unstable
    # Highest position known to be stored on a quorum.
    # Invariant: applied <= committed <= last_index().
    cdef uint64_t committed
    # Highest position handed to the application in a Ready (the app
    # applies and acknowledges it with advance()).
    cdef uint64_t applied
    # Bound on the size of committed entries in one Ready.
    cdef uint64_t max_next_ents_size

    cdef uint64_t first_index(self) noexcept
    cdef uint64_t last_index(self) noexcept
    cdef uint64_t last_term(self) except? 0
    # 0 for positions outside [first_index()-1, last_index()] or compacted.
    cdef uint64_t zero_term(self, uint64_t i) except? 0
    # TERM_OK/TERM_COMPACTED/TERM_UNAVAILABLE, the term through out.
    cdef int term_of(self, uint64_t i, uint64_t *out) except -1
    cdef bint match_term(self, uint64_t i, uint64_t term) except -1
    cdef bint maybe_append(self, uint64_t index, uint64_t log_term, uint64_t committed,
                           list ents, uint64_t *last_new) except -1
    cdef uint64_t append(self, list ents) except? 0
    cdef uint64_t find_conflict(self, list ents) except? 0
    cdef uint64_t find_conflict_by_term(self, uint64_t index, uint64_t term) except? 0
    cdef list unstable_entries(self)
    cdef list next_ents(self)
    cdef bint has_next_ents(self) noexcept
    cdef bint has_pending_snapshot(self) noexcept
    cdef Snapshot snapshot(self)
    cdef int commit_to(self, uint64_t tocommit) except -1
    cdef int applied_to(self, uint64_t i) except -1
    cdef void stable_to(self, uint64_t i, uint64_t t)
    cdef void stable_snap_to(self, uint64_t i)
    cdef list entries(self, uint64_t i, uint64_t max_size)
    cdef bint is_up_to_date(self, uint64_t lasti, uint64_t term) except -1
    cdef bint maybe_commit(self, uint64_t max_index, uint64_t term) except -1
    cdef void restore(self, Snapshot s)
    cdef list slice(self, uint64_t lo, uint64_t hi, uint64_t max_size)
