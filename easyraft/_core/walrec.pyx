"""WAL record framing: encoder and incremental decoder.

Follows etcd's server/storage/wal encoder.go/decoder.go; the on-disk layout
and why its CRC is per record are in walrec.pxd. This module does no I/O: the
WAL (easyraft/storage/wal.py) hands it bytes to frame or a segment's bytes to
decode.

The decoder sorts what it cannot decode into two errors:
  TornTailError       the write was cut short: the record runs past the end of
                      the data, or its bytes hold a whole zero (never written)
                      sector, or non-zero bytes follow a zero header. The WAL
                      truncates this in the last segment (never acknowledged).
  CorruptRecordError  a complete record failed its CRC or format checks and
                      shows no sign of a cut-short write: damage to data that
                      may have been acknowledged. Never repaired silently.
Both carry the offset of the bad record and a reason.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM, PyList_Append
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from cpython.object cimport PyObject
from libc.string cimport memcpy, memset

from easyraft._core.types cimport Entry, HardState
from easyraft._core.codec cimport (Reader, entry_size, write_entry, read_entry, ENTRY_HEADER_SIZE,
                                   HARD_STATE_SIZE, er_store_u32, er_store_u64, er_load_u32,
                                   er_load_u64)
from easyraft._core.crc32c cimport crc32c_update, crc32c_prefix_copy_update_x3
from easyraft._core.types import CodecError

cdef extern from "Python.h":
    # The bytes macros on a borrowed PyObject*: no reference counting.
    char *_bytes_data "PyBytes_AS_STRING" (PyObject *o) nogil
    Py_ssize_t _bytes_size "PyBytes_GET_SIZE" (PyObject *o) nogil

# Largest data a record can carry: len is a u32.
cdef Py_ssize_t MAX_RECORD_DATA = 0xFFFFFFFF


class RecordError(CodecError):
    """A WAL record could not be decoded; `offset` is where it starts."""

    def __init__(self, offset, reason):
        self.offset = offset
        self.reason = reason
        super().__init__(f"wal: {reason} at offset {offset}")


class TornTailError(RecordError):
    """The data ends in a write that was cut short (safe to truncate at the tail)."""


class CorruptRecordError(RecordError):
    """A complete record is damaged (never truncated silently)."""


def frame_size(Py_ssize_t data_len):
    """Return the on-disk size of a record carrying `data_len` bytes."""
    if data_len < 0:
        raise ValueError("wal: negative record length")
    return walrec_frame_size(data_len)


cdef inline uint32_t _fold(uint32_t chain, uint32_t rec_crc) noexcept nogil:
    # The chain folds the little-endian bytes of each record's CRC.
    cdef char b[4]
    er_store_u32(b, rec_crc)
    return crc32c_update(chain, b, 4)


cdef inline void _write_entry_prefix(char *p, PyObject *eo, PyObject *data, Py_ssize_t sz) noexcept:
    # Record header (CRC left for later) and the entry's codec header, laid
    # out exactly as codec.write_entry does (tests compare the two byte for
    # byte). Not write_entry itself: it copies the payload, and the encoder
    # fuses that copy with the CRC pass. eo/data are borrowed (see encode).
    # Stored as the u32 + three u64 words the CRC kernel loads right after
    # (bytes [4, 8), [8, 16), [16, 24), [24, 32) of the record), not field by
    # field: a load spanning several narrower stores misses store-to-load
    # forwarding and stalls each record's CRC chain (~8% of an encode here).
    cdef uint64_t term = (<Entry>eo).term, index = (<Entry>eo).index
    cdef Py_ssize_t size = walrec_frame_size(sz)
    memset(p + size - 8, 0, 8)      # padding, as _write_header
    er_store_u32(p + 4, <uint32_t>sz)
    # type, 2 reserved zero bytes, term bytes 0-4
    er_store_u64(p + 8, <uint64_t>ENTRY | (term << 24))
    # term bytes 5-7, index bytes 0-4
    er_store_u64(p + 16, (term >> 40) | (index << 24))
    # index bytes 5-7, entry type, len(data)
    er_store_u64(p + 24, (index >> 40) | (<uint64_t>(<Entry>eo).type << 24)
                 | (<uint64_t><uint32_t>_bytes_size(data) << 32))


cdef inline void _write_header(char *p, Py_ssize_t n, int typ) noexcept nogil:
    # Padding bytes must be zero on disk: PyBytes_FromStringAndSize(NULL, ..)
    # does not clear memory, so clear the last word of the frame first (the
    # header and data then overwrite its front when the frame is short; a
    # frame is at least 16 bytes).
    cdef Py_ssize_t size = walrec_frame_size(n)
    memset(p + size - 8, 0, 8)
    er_store_u32(p + 4, <uint32_t>n)
    p[8] = <char>typ
    p[9] = 0
    p[10] = 0


@cython.final
cdef class Encoder:
    """Frame records; `chain` continues from the value given (0 for a new log)."""

    def __init__(self, uint32_t chain=0):
        self.chain = chain

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cpdef bytes encode(self, list entries, object hard_state=None):
        """Return one buffer holding an ENTRY record per entry, then a STATE
        record when `hard_state` is given (etcd's Save order)."""
        cdef Py_ssize_t n = PyList_GET_SIZE(entries), i, k, total = 0, sz
        cdef Entry e
        cdef HardState hs = None
        if hard_state is not None:
            hs = <HardState?>hard_state
        for i in range(n):
            # Typed assignment checks the type (a cast of the borrowed
            # PyList_GET_ITEM pointer would not); the loops below then rely
            # on it: nothing runs between them that could change the list.
            e = entries[i]
            sz = ENTRY_HEADER_SIZE + PyBytes_GET_SIZE(e.data)    # = codec.entry_size
            if sz > MAX_RECORD_DATA:
                raise CodecError("wal: entry too large for one record")
            total += walrec_frame_size(sz)
        if hs is not None:
            total += walrec_frame_size(HARD_STATE_SIZE)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef char *p = PyBytes_AS_STRING(out)
        cdef char *rec[3]
        cdef const char *pre[3]
        cdef const char *src[3]
        cdef char *dst[3]
        cdef size_t lens[3]
        cdef uint32_t crcs[3]
        # The chain folds the records' CRC bytes in order; gathering them lets
        # one update fold a run (update(update(c, a), b) == update(c, a + b)).
        cdef char folded[4 * 3 * 8]
        cdef Py_ssize_t nfold = 0
        cdef uint32_t chain = self.chain
        cdef PyObject *eo
        cdef PyObject *data
        i = 0
        # Entries three at a time: headers first, then one kernel call that
        # checksums the three 28-byte prefixes and copies+checksums the
        # three payloads, so the crc32 unit always has three independent
        # chains and the payload bytes are read once. i + 3 <= n guards the
        # list access.
        # Borrowed PyObject* access from here on: the INCREF/DECREF pairs of
        # typed access (four per entry) were a third of the loop's own time.
        # Safe because no Python code runs between the type checks above,
        # the allocation of `out` and the end of these loops, so the list
        # and the entries it holds stay as they are.
        while i + 3 <= n:
            for k in range(3):
                eo = PyList_GET_ITEM(entries, i + k)
                data = <PyObject *>(<Entry>eo).data
                sz = ENTRY_HEADER_SIZE + _bytes_size(data)
                rec[k] = p
                _write_entry_prefix(p, eo, data, sz)
                crcs[k] = 0
                pre[k] = p + 4
                src[k] = _bytes_data(data)
                dst[k] = p + RECORD_HEADER_SIZE + ENTRY_HEADER_SIZE
                lens[k] = _bytes_size(data)
                p += walrec_frame_size(sz)
            crc32c_prefix_copy_update_x3(crcs, pre, RECORD_HEADER_SIZE - 4 + ENTRY_HEADER_SIZE,
                                         dst, src, lens)
            for k in range(3):
                er_store_u32(rec[k], crcs[k])
                er_store_u32(folded + nfold, crcs[k])
                nfold += 4
            if nfold == sizeof(folded):
                chain = crc32c_update(chain, folded, nfold)
                nfold = 0
            i += 3
        while i < n:
            eo = PyList_GET_ITEM(entries, i)
            data = <PyObject *>(<Entry>eo).data
            sz = ENTRY_HEADER_SIZE + _bytes_size(data)
            _write_entry_prefix(p, eo, data, sz)
            memcpy(p + RECORD_HEADER_SIZE + ENTRY_HEADER_SIZE, _bytes_data(data), _bytes_size(data))
            crcs[0] = crc32c_update(0, p + 4, RECORD_HEADER_SIZE - 4 + sz)
            er_store_u32(p, crcs[0])
            er_store_u32(folded + nfold, crcs[0])
            nfold += 4
            p += walrec_frame_size(sz)
            i += 1
        if hs is not None:
            _write_header(p, HARD_STATE_SIZE, STATE)
            er_store_u64(p + RECORD_HEADER_SIZE, hs.term)
            er_store_u64(p + RECORD_HEADER_SIZE + 8, hs.vote)
            er_store_u64(p + RECORD_HEADER_SIZE + 16, hs.commit)
            crcs[0] = crc32c_update(0, p + 4, RECORD_HEADER_SIZE - 4 + HARD_STATE_SIZE)
            er_store_u32(p, crcs[0])
            er_store_u32(folded + nfold, crcs[0])
            nfold += 4
        self.chain = crc32c_update(chain, folded, nfold)
        return out

    cpdef bytes encode_record(self, int type, object data):
        """Return one framed record of `type` carrying `data` (a bytes-like)."""
        cdef Py_buffer view
        if type < 1 or type > RECORD_TYPE_MAX:
            raise ValueError(f"wal: unknown record type {type}")
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if view.len > MAX_RECORD_DATA:
                raise CodecError("wal: record data too large")
            out = PyBytes_FromStringAndSize(NULL, walrec_frame_size(view.len))
            _write_header(PyBytes_AS_STRING(out), view.len, type)
            memcpy(PyBytes_AS_STRING(out) + RECORD_HEADER_SIZE, view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        self.chain = _checksum_one(PyBytes_AS_STRING(out), self.chain)
        return out


cdef inline uint32_t _checksum_one(char *p, uint32_t chain) noexcept:
    # Fill in the CRC of the record at p (its length is already in the
    # header) and return the chain folded over it.
    cdef uint32_t crc = crc32c_update(0, p + 4, RECORD_HEADER_SIZE - 4 + er_load_u32(p + 4))
    er_store_u32(p, crc)
    return _fold(chain, crc)


@cython.final
cdef class Decoder:
    """Decode the records of one segment's bytes, front to back.

    `data` is the whole segment (any buffer; held until close()). `chain` is
    the chain value the segment must continue, or None when decoding starts
    at a segment whose predecessors are gone (purged): its CRC record is then
    trusted. After an error, `offset` is the start of the bad record.
    """

    def __init__(self, data, chain=None):
        PyObject_GetBuffer(data, &self._view, PyBUF_SIMPLE)
        self._has_view = True
        self._owner = data
        self._buf = <const char *>self._view.buf
        self._len = self._view.len
        self._pos = 0
        self.records = 0
        if chain is None:
            self.chain = 0
            self.chain_known = False
        else:
            self.chain = chain
            self.chain_known = True

    def __dealloc__(self):
        if self._has_view:
            PyBuffer_Release(&self._view)

    def close(self):
        """Release the buffer."""
        if self._has_view:
            PyBuffer_Release(&self._view)
            self._has_view = False
        self._owner = None
        self._buf = NULL
        self._len = 0
        self._pos = 0

    @property
    def offset(self):
        """Offset of the next record: the end of the good records so far."""
        return self._pos

    @property
    def size(self):
        return self._len

    cdef Py_ssize_t _tail_zero(self, Py_ssize_t start) noexcept:
        # Return the offset of the first non-zero byte at or after start, or
        # _len when the rest is zero. Word at a time: preallocated segments
        # are tens of MiB of zeros.
        cdef Py_ssize_t i = start
        cdef uint64_t w
        while i < self._len and (i & 7):
            if self._buf[i]:
                return i
            i += 1
        while i + 8 <= self._len:
            memcpy(&w, self._buf + i, 8)
            if w:
                break
            i += 8
        while i < self._len:
            if self._buf[i]:
                return i
            i += 1
        return self._len

    cdef bint _has_zero_sector(self, Py_ssize_t start, Py_ssize_t end) noexcept:
        # Does [start, end) contain a zero run spanning one sector-aligned
        # chunk, i.e. a piece of the write that never reached the disk?
        # (etcd: decoder.isTornEntry.) Chunks are cut at absolute sector
        # boundaries and at start/end.
        cdef Py_ssize_t lo = start, hi
        while lo < end:
            hi = (lo // TORN_SECTOR_SIZE + 1) * TORN_SECTOR_SIZE
            if hi > end:
                hi = end
            if self._tail_zero(lo) >= hi:
                return True
            lo = hi
        return False

    cdef bint _valid_record_after(self, Py_ssize_t start) noexcept:
        # Is there a complete record with a good CRC at any 8-aligned offset
        # >= start? Error path only; zero runs are skipped a word at a time.
        cdef Py_ssize_t pos = start, size
        cdef uint32_t n
        cdef uint8_t typ
        while pos + RECORD_HEADER_SIZE <= self._len:
            pos = self._tail_zero(pos) & ~(<Py_ssize_t>7)
            if pos + RECORD_HEADER_SIZE > self._len:
                return False
            n = er_load_u32(self._buf + pos + 4)
            typ = <uint8_t>self._buf[pos + 8]
            size = walrec_frame_size(n)
            if 1 <= typ <= RECORD_TYPE_MAX and self._buf[pos + 9] == 0 and self._buf[pos + 10] == 0 \
                    and size <= self._len - pos \
                    and crc32c_update(0, self._buf + pos + 4, RECORD_HEADER_SIZE - 4 + n) \
                        == er_load_u32(self._buf + pos):
                return True
            pos += 8
        return False

    cdef int _check_header(self, uint32_t *out_len, uint8_t *out_type) except -1:
        # Validate the record at _pos; return 1 when it is good, 0 at a clean
        # end (no more bytes, or zero header over an all-zero rest). Raises
        # TornTailError / CorruptRecordError otherwise. _pos is unchanged.
        cdef Py_ssize_t pos = self._pos, left = self._len - self._pos, size, nz
        cdef uint32_t n, crc
        cdef uint8_t typ
        if left == 0:
            return 0
        if left < RECORD_HEADER_SIZE:
            if self._tail_zero(pos) == self._len:
                return 0
            raise TornTailError(pos, f"partial record header ({left} bytes)")
        crc = er_load_u32(self._buf + pos)
        n = er_load_u32(self._buf + pos + 4)
        typ = <uint8_t>self._buf[pos + 8]
        if crc == 0 and n == 0 and typ == 0 and self._buf[pos + 9] == 0 \
                and self._buf[pos + 10] == 0:
            nz = self._tail_zero(pos)
            if nz == self._len:
                return 0
            raise TornTailError(pos, f"zero record header followed by data at offset {nz}")
        size = walrec_frame_size(n)
        if size > left:
            # A cut-short write leaves nothing valid after it; a damaged length
            # field in the middle of the log does (records are checked alone).
            if self._valid_record_after(pos + 8):
                raise CorruptRecordError(pos, f"record length {n} runs past the end, "
                                              f"but valid records follow")
            raise TornTailError(pos, f"record of {size} bytes runs past the end ({left} bytes left)")
        if typ == 0 or typ > RECORD_TYPE_MAX or self._buf[pos + 9] or self._buf[pos + 10]:
            self._raise_bad(pos, size, f"bad record header (type {typ})")
        if crc32c_update(0, self._buf + pos + 4, RECORD_HEADER_SIZE - 4 + n) != crc:
            self._raise_bad(pos, size, "record crc mismatch")
        if self._tail_zero(pos + RECORD_HEADER_SIZE + n) < pos + size:
            self._raise_bad(pos, size, "non-zero record padding")
        out_len[0] = n
        out_type[0] = typ
        return 1

    cdef int _raise_bad(self, Py_ssize_t pos, Py_ssize_t size, str reason) except -1:
        if self._has_zero_sector(pos, pos + size):
            raise TornTailError(pos, f"{reason}; record holds an unwritten (zero) sector")
        raise CorruptRecordError(pos, reason)

    cdef void _accept(self, uint32_t n) noexcept:
        self.chain = _fold(self.chain, er_load_u32(self._buf + self._pos))
        self._pos += walrec_frame_size(n)
        self.records += 1

    cdef int _check_crc_record(self, uint32_t n) except -1:
        cdef uint32_t value
        if n != 4:
            raise CorruptRecordError(self._pos, f"crc record of {n} bytes")
        value = er_load_u32(self._buf + self._pos + RECORD_HEADER_SIZE)
        if self.chain_known and value != self.chain:
            raise CorruptRecordError(
                self._pos, f"crc chain mismatch: segment continues {value:#010x}, "
                           f"log so far is {self.chain:#010x}")
        self.chain = value
        self.chain_known = True
        return 0

    def next_record(self):
        """Return the next record as (type, data, offset), or None at the end.

        Raises TornTailError or CorruptRecordError (with the offset) when the
        next record cannot be decoded; CRC records are checked against the
        chain here.
        """
        cdef uint32_t n
        cdef uint8_t typ
        cdef Py_ssize_t pos
        if self._buf == NULL or not self._check_header(&n, &typ):
            return None
        if typ == CRC:
            self._check_crc_record(n)
        pos = self._pos
        data = PyBytes_FromStringAndSize(self._buf + pos + RECORD_HEADER_SIZE, n)
        self._accept(n)
        return (typ, data, pos)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def decode(self, list entries not None, uint64_t after=0):
        """Decode entry records into `entries` until a non-entry record.

        Entries with index <= `after` (covered by the snapshot) are skipped.
        `entries` holds consecutive indexes starting at after + 1; an entry
        whose index is already present replaces it and everything after it
        (a later leader overwrote them, Raft thesis §3.5). Returns the next
        non-entry record as (type, data, offset), or None at the end.
        Raises CorruptRecordError for an index gap or an undecodable entry.
        """
        cdef uint32_t n
        cdef uint8_t typ
        cdef Reader r
        cdef Entry e
        cdef uint64_t up
        cdef Py_ssize_t have
        if self._buf == NULL:
            return None
        # One try around the loop, not one per entry: entering a try block
        # saves the exception state, which showed in the per-entry cost.
        try:
            while self._check_header(&n, &typ):
                if typ != ENTRY:
                    return self.next_record()
                r.buf = self._buf + self._pos + RECORD_HEADER_SIZE
                r.len = n
                r.pos = 0
                e = read_entry(&r)
                if r.pos != r.len:
                    raise CodecError(f"codec: {r.len - r.pos} trailing bytes after entry")
                if e.index > after:
                    up = e.index - after - 1        # position of e in entries; e.index > after
                    have = PyList_GET_SIZE(entries)
                    if up > <uint64_t>have:
                        raise CorruptRecordError(
                            self._pos, f"entry index {e.index} leaves a gap after index {after + have}")
                    if up < <uint64_t>have:
                        del entries[up:]
                    PyList_Append(entries, e)
                self._accept(n)
        except RecordError:
            raise
        except CodecError as exc:
            # read_entry refused a record whose CRC was good: written broken.
            raise CorruptRecordError(self._pos, f"undecodable entry record ({exc})") from None
        return None
