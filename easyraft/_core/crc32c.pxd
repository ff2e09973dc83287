# CRC-32C (Castagnoli), the checksum of WAL records and snapshot files
# (etcd: pkg/crc + hash/crc32 with crc32.Castagnoli, which Go also computes
# with the SSE4.2 instruction and three interleaved streams).
#
# Invariants: every function takes and returns the *finished* CRC, so
# crc32c_update(crc32c_update(0, a), b) == crc32c of a + b (zlib/crcmod
# convention). Both paths (SSE4.2 and slicing-by-8 tables) give identical
# results; the choice is made once at import and can be forced for tests.
from libc.stdint cimport uint32_t

# Update `crc` with n bytes at buf. Safe without the GIL; n >= 0.
cdef uint32_t crc32c_update(uint32_t crc, const char *buf, Py_ssize_t n) noexcept nogil

# Three independent updates at once: crc[i] = update(crc[i], buf[i], n[i]).
# Faster than three calls on the hardware path (three dependency chains run
# in lockstep); used for runs of small WAL records.
cdef void crc32c_update_x3(uint32_t *crc, const char **buf, const size_t *n) noexcept nogil

# crc32c_update_x3 fused with a copy: dst[i] receives n[i] bytes from src[i]
# and crc[i] is updated with them, in one pass over the bytes.
cdef void crc32c_copy_update_x3(uint32_t *crc, char **dst, const char **src,
                                const size_t *n) noexcept nogil

# crc[i] = update(crc[i], prefix[i][:plen] + src[i][:n[i]]) while copying
# src[i] to dst[i]: one call finishes three WAL records. Where the CPU has
# AVX2 + VPCLMULQDQ, part of each payload is folded with carry-less
# multiplies beside the crc32 instruction (crc32c_impl.h says why and how).
cdef void crc32c_prefix_copy_update_x3(uint32_t *crc, const char **prefix, size_t plen,
                                       char **dst, const char **src, const size_t *n) noexcept nogil
