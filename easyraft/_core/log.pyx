"""The raft log over storage + unstable entries (etcd: log.go).

Positions run [first_index(), last_index()]; position first_index()-1 is
the last compacted one, whose term storage still knows.
"""
cimport cython
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from libc.stdint cimport uint64_t, UINT64_MAX

from easyraft._core.storage cimport (MemoryStorage, limit_size, TERM_OK, TERM_COMPACTED,
                                     TERM_UNAVAILABLE)
from easyraft._core.log_unstable cimport Unstable
from easyraft._core.types cimport Entry, Snapshot, empty_snapshot
from easyraft._core.types import CompactedError, RaftError


@cython.final
cdef class RaftLog:
    def __cinit__(self, MemoryStorage storage not None, uint64_t max_next_ents_size=UINT64_MAX):
        cdef uint64_t first, last
        self.storage = storage
        self.unstable = Unstable()
        self.max_next_ents_size = max_next_ents_size
        first = storage.c_first_index()
        last = storage.c_last_index()
        self.unstable.offset = last + 1
        # Everything up to the snapshot is committed and applied by definition.
        self.committed = first - 1
        self.applied = first - 1

    def __repr__(self):
        return (f"RaftLog(committed={self.committed}, applied={self.applied}, "
                f"unstable.offset={self.unstable.offset}, "
                f"len(unstable.entries)={len(self.unstable.entries)})")

    cdef uint64_t first_index(self) noexcept:
        cdef uint64_t i
        if self.unstable.maybe_first_index(&i):
            return i
        return self.storage.c_first_index()

    cdef uint64_t last_index(self) noexcept:
        cdef uint64_t i
        if self.unstable.maybe_last_index(&i):
            return i
        return self.storage.c_last_index()

    cdef int term_of(self, uint64_t i, uint64_t *out) except -1:
        # The valid term range is [first_index()-1, last_index()]; outside it
        # the term is 0 and no error, as in etcd.
        cdef uint64_t dummy = self.first_index() - 1
        cdef int rc
        if i < dummy or i > self.last_index():
            out[0] = 0
            return TERM_OK
        if self.unstable.maybe_term(i, out):
            return TERM_OK
        rc = self.storage.c_term(i, out)
        if rc != TERM_OK:
            out[0] = 0
        return rc

    cdef uint64_t zero_term(self, uint64_t i) except? 0:
        cdef uint64_t t = 0
        self.term_of(i, &t)
        return t

    cdef uint64_t last_term(self) except? 0:
        return self.zero_term(self.last_index())

    cdef bint match_term(self, uint64_t i, uint64_t term) except -1:
        cdef uint64_t t = 0
        if self.term_of(i, &t) != TERM_OK:
            return False
        return t == term

    cdef bint maybe_append(self, uint64_t index, uint64_t log_term, uint64_t committed,
                           list ents, uint64_t *last_new) except -1:
        # Log matching (Raft thesis §3.5): accept only if we hold
        # (index, log_term); then drop any conflicting suffix and append.
        cdef uint64_t ci, lastnewi
        if not self.match_term(index, log_term):
            return False
        lastnewi = index + <uint64_t>PyList_GET_SIZE(ents)
        ci = self.find_conflict(ents)
        if ci != 0:
            if ci <= self.committed:
                raise RaftError(f"raft: entry {ci} conflicts with committed entry "
                                f"[committed({self.committed})]")
            self.append(ents[<Py_ssize_t>(ci - (index + 1)):])
        self.commit_to(min(committed, lastnewi))
        last_new[0] = lastnewi
        return True

    cdef uint64_t append(self, list ents) except? 0:
        cdef uint64_t after
        if PyList_GET_SIZE(ents) == 0:
            return self.last_index()
        after = (<Entry>PyList_GET_ITEM(ents, 0)).index - 1
        if after < self.committed:
            raise RaftError(f"raft: after({after}) is out of range [committed({self.committed})]")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    cdef uint64_t find_conflict(self, list ents) except? 0:
        # The first entry whose term differs from ours, or the first new one;
        # 0 when every entry is already in the log.
        cdef Py_ssize_t i, n = PyList_GET_SIZE(ents)
        cdef Entry e
        for i in range(n):
            e = <Entry>PyList_GET_ITEM(ents, i)
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    cdef uint64_t find_conflict_by_term(self, uint64_t index, uint64_t term) except? 0:
        # The largest position <= index whose term is <= term: where the
        # leader should probe next (fast backtracking, thesis §5.3 note).
        cdef uint64_t t = 0
        if index > self.last_index():
            return index
        while True:
            if self.term_of(index, &t) != TERM_OK or t <= term:
                return index
            index -= 1

    cdef list unstable_entries(self):
        return self.unstable.entries

    cdef list next_ents(self):
        # Committed entries not yet handed to the application.
        cdef uint64_t off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            return self.slice(off, self.committed + 1, self.max_next_ents_size)
        return []

    cdef bint has_next_ents(self) noexcept:
        cdef uint64_t off = max(self.applied + 1, self.first_index())
        return self.committed + 1 > off

    cdef bint has_pending_snapshot(self) noexcept:
        return self.unstable.snapshot is not None and not self.unstable.snapshot.is_empty()

    cdef Snapshot snapshot(self):
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snap

    cdef int commit_to(self, uint64_t tocommit) except -1:
        # Never decrease commit.
        if self.committed < tocommit:
            if self.last_index() < tocommit:
                raise RaftError(f"raft: tocommit({tocommit}) is out of range "
                                f"[lastIndex({self.last_index()})]. Was the raft log "
                                f"corrupted, truncated, or lost?")
            self.committed = tocommit
        return 0

    cdef int applied_to(self, uint64_t i) except -1:
        if i == 0:
            return 0
        if self.committed < i or i < self.applied:
            raise RaftError(f"raft: applied({i}) is out of range [prevApplied({self.applied}), "
                            f"committed({self.committed})]")
        self.applied = i
        return 0

    cdef void stable_to(self, uint64_t i, uint64_t t):
        self.unstable.stable_to(i, t)

    cdef void stable_snap_to(self, uint64_t i):
        self.unstable.stable_snap_to(i)

    cdef list entries(self, uint64_t i, uint64_t max_size):
        cdef uint64_t last = self.last_index()
        if i > last:
            return []
        return self.slice(i, last + 1, max_size)

    cdef bint is_up_to_date(self, uint64_t lasti, uint64_t term) except -1:
        # Election restriction (Raft thesis §3.6.1): grant only to a log at
        # least as up-to-date as ours.
        cdef uint64_t lt = self.last_term()
        return term > lt or (term == lt and lasti >= self.last_index())

    cdef bint maybe_commit(self, uint64_t max_index, uint64_t term) except -1:
        # Commit only entries of the current term by counting replicas
        # (Raft thesis §3.6.2, Figure 3.7); earlier ones follow implicitly.
        if max_index > self.committed and self.zero_term(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    cdef void restore(self, Snapshot s):
        self.committed = s.metadata.index
        self.unstable.restore(s)

    cdef list slice(self, uint64_t lo, uint64_t hi, uint64_t max_size):
        # Entries [lo, hi) from storage then unstable, at most max_size bytes
        # (at least one entry). Raises CompactedError below first_index().
        cdef uint64_t fi = self.first_index()
        cdef uint64_t uoff = self.unstable.offset
        cdef list ents = None, tail
        if lo > hi:
            raise RaftError(f"raft: invalid slice {lo} > {hi}")
        if lo < fi:
            raise CompactedError(f"raft: requested index {lo} is unavailable due to compaction")
        if hi > self.last_index() + 1:
            raise RaftError(f"raft: slice[{lo},{hi}) out of bound [{fi},{self.last_index()}]")
        if lo == hi:
            return []
        if lo < uoff:
            ents = self.storage.c_entries(lo, min(hi, uoff), max_size)
            # Storage hit the size limit: do not look further.
            if <uint64_t>PyList_GET_SIZE(ents) < min(hi, uoff) - lo:
                return ents
        if hi > uoff:
            tail = self.unstable.slice(max(lo, uoff), hi)
            if ents is not None and PyList_GET_SIZE(ents):
                ents = ents + tail
            else:
                ents = tail
        return limit_size(ents, max_size)
