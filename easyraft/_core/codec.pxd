# Binary codec for the core's records (etcd: raftpb's protobuf marshalling).
#
# Fixed-width little-endian fields; every variable part is length-prefixed and
# every length is checked against the bytes actually present before anything
# is allocated, so hostile input costs at most its own size.
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from easyraft._core.types cimport Entry, HardState, Message, Snapshot, SnapshotMetadata, ConfState

cdef extern from "endian.h":
    void er_store_u64(char *p, uint64_t v) noexcept nogil
    void er_store_u32(char *p, uint32_t v) noexcept nogil
    uint64_t er_load_u64(const char *p) noexcept nogil
    uint32_t er_load_u32(const char *p) noexcept nogil
    const int64_t ER_U32_MAX

# A cursor over borrowed input bytes; the owner keeps them alive.
cdef struct Reader:
    const char *buf
    Py_ssize_t len
    Py_ssize_t pos      # invariant: 0 <= pos <= len

# Encoded sizes, for callers that size a buffer before writing into it.
cdef enum:
    ENTRY_HEADER_SIZE = 8 + 8 + 1 + 4               # term, index, type, len(data)
    MESSAGE_HEADER_SIZE = 1 + 1 + 7 * 8 + 4 + 4     # type, flags, 7 x u64, len(ctx), n_entries
    HARD_STATE_SIZE = 3 * 8
    FRAME_PREFIX_SIZE = 4

cdef Py_ssize_t entry_size(Entry e) noexcept
cdef Py_ssize_t message_size(Message m) except -1
cdef char *write_entry(char *p, Entry e) noexcept
cdef char *write_message(char *p, Message m) except NULL
# Raise TypeError/CodecError for a message write_message cannot encode;
# checked_message_size also returns message_size(m).
cdef int check_message(Message m) except -1
cdef Py_ssize_t checked_message_size(Message m) except -1

cdef Entry read_entry(Reader *r)
cdef Message read_message(Reader *r)
