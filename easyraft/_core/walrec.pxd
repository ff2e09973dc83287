# WAL record framing (etcd: server/storage/wal/encoder.go, decoder.go, doc.go).
#
# A segment is a sequence of records, each starting at an 8-byte aligned
# offset (etcd: "so that the length field is never torn"):
#
#   offset 0   u32 crc    CRC-32C of bytes [4, 11 + len) of this record
#          4   u32 len    length of data
#          8   u8  type   RecordType, never 0
#          9   2 bytes    reserved, zero
#         11   data[len]
#              zero padding to the next multiple of 8
#
# The odd 11-byte header puts an entry's payload (after codec's 21-byte entry
# header) at offset 32 of the record, 8-byte aligned: the encoder's fused
# copy+CRC loop ran ~1.7x slower into misaligned stores that split cache
# lines (C microbenchmark on this machine's AMD EPYC).
#
# Invariants: frame size = walrec_frame_size(len) is a multiple of 8; a record
# header whose first 11 bytes are zero is never written (type 0 is invalid),
# so zero-filled preallocated space reads as "end of log"; all integers are
# little-endian.
#
# Deviation from etcd: each record's CRC covers only that record (plus its
# length and type), not every preceding record. Why: (1) a damaged record
# does not make later records unverifiable, so the decoder can see that
# valid records follow a bad one, which a torn tail never has; (2) the
# encoder checksums three records in lockstep (crc32c_prefix_copy_update_x3),
# which a chain forbids: one record at a time the crc32 instruction's 3-cycle
# latency would cap it at a third of its throughput (~8 vs ~24 GB/s here),
# and the checksum is most of an encode's cost (on CPUs with VPCLMULQDQ the
# kernel also folds half of each payload with carry-less multiplies, ~17%
# faster; the bytes on disk are the same either way). What the chain bought etcd - noticing dropped, reordered
# or foreign records - is kept by a cheap second chain: `chain` folds each
# record's 4-byte CRC, and every segment starts with a CRC record holding the
# chain value at the end of the previous segment, which the decoder checks.
from libc.stdint cimport uint8_t, uint32_t, uint64_t

cpdef enum RecordType:
    METADATA = 1    # data: the application's metadata bytes (first segment record after CRC)
    ENTRY = 2       # data: codec Entry
    STATE = 3       # data: codec HardState (24 bytes)
    CRC = 4         # data: u32 chain value before this record; first record of a segment
    SNAPSHOT = 5    # data: u64 index | u64 term of a snapshot saved before this point

cdef enum:
    RECORD_HEADER_SIZE = 11
    RECORD_TYPE_MAX = 5
    # Sector size for torn-write detection: a write that was cut short by a
    # power loss leaves whole unwritten sectors, which in preallocated space
    # read as zeros (etcd's minSectorSize).
    TORN_SECTOR_SIZE = 512


cdef inline Py_ssize_t walrec_frame_size(Py_ssize_t data_len) noexcept nogil:
    return (RECORD_HEADER_SIZE + data_len + 7) & ~(<Py_ssize_t>7)


cdef class Encoder:
    # Folds each record's CRC; the value after the last record encoded.
    cdef public uint32_t chain

    cpdef bytes encode(self, list entries, object hard_state=*)
    cpdef bytes encode_record(self, int type, object data)


cdef class Decoder:
    cdef object _owner          # keeps the buffer alive; we hold a view of it
    cdef Py_buffer _view
    cdef bint _has_view
    cdef const char *_buf
    cdef Py_ssize_t _len
    cdef Py_ssize_t _pos        # start of the next record; invariant: 0 <= _pos <= _len, 8-aligned
    # Chain value after the last good record.
    cdef public uint32_t chain
    # False until the first CRC record when decoding starts mid-log (purged
    # segments before): that record's value is then taken as given.
    cdef public bint chain_known
    # Number of records decoded so far.
    cdef public Py_ssize_t records

    cdef int _check_header(self, uint32_t *out_len, uint8_t *out_type) except -1
    cdef Py_ssize_t _tail_zero(self, Py_ssize_t start) noexcept
    cdef bint _valid_record_after(self, Py_ssize_t start) noexcept
    cdef bint _has_zero_sector(self, Py_ssize_t start, Py_ssize_t end) noexcept
    cdef int _raise_bad(self, Py_ssize_t pos, Py_ssize_t size, str reason) except -1
    cdef void _accept(self, uint32_t n) noexcept
    cdef int _check_crc_record(self, uint32_t n) except -1
