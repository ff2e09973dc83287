# In-memory log storage (etcd: storage.go, MemoryStorage).
#
# The Storage contract: entries [first_index(), last_index()] are available;
# position first_index()-1 is the "dummy" holding the term of the last
# compacted entry (the snapshot's index/term). Errors: CompactedError for
# indexes below the dummy, UnavailableError past the last index.
#
# Layout: no Python object per entry. Terms and types live in C arrays, the
# payloads in one list of bytes; Entry objects are built only when read.
# Slot i holds log position offset + i; slot 0 is the dummy.
# Not thread-safe: only the node's loop thread touches it (the raft core
# reads, the Ready handler writes, never concurrently).
from libc.stdint cimport uint8_t, uint64_t
from easyraft._core.types cimport Entry, HardState, Snapshot, ConfState

cdef enum:
    TERM_OK = 0
    TERM_COMPACTED = 1
    TERM_UNAVAILABLE = 2

# The first entries of ents whose total wire size fits max_size, always at
# least one (so a big entry still makes progress). Returns ents itself when
# nothing is cut.
cdef list limit_size(list ents, uint64_t max_size)


cdef class MemoryStorage:
    cdef HardState hard_state
    cdef Snapshot snap            # the last applied/created snapshot
    cdef uint64_t offset          # log position of slot 0 (the dummy)
    cdef uint64_t *terms          # terms[i]: term of position offset + i
    cdef uint8_t *types           # types[i]: EntryType of position offset + i
    cdef list datas               # datas[i]: payload of position offset + i
    cdef Py_ssize_t length        # slots in use, >= 1 (the dummy)
    cdef Py_ssize_t capacity      # slots allocated in terms/types

    cdef uint64_t c_first_index(self) noexcept
    cdef uint64_t c_last_index(self) noexcept
    cdef int c_term(self, uint64_t i, uint64_t *out) noexcept
    cdef list c_entries(self, uint64_t lo, uint64_t hi, uint64_t max_size)
    cdef int c_append(self, list entries) except -1
    cdef int _reserve(self, Py_ssize_t n) except -1
