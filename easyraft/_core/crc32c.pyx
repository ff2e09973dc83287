"""CRC-32C with the SSE4.2 crc32 instruction where the CPU has it.

Follows Go's hash/crc32 Castagnoli path used by etcd's WAL (pkg/crc): the
hardware loop runs three interleaved streams over large buffers and falls
back to slicing-by-8 tables elsewhere. The kernels live in crc32c_impl.h;
this module picks one at import (runtime CPU detection, never a global
-msse4.2, so the wheel loads on any x86-64 and builds on other CPUs with the
table path only) and wraps it for Python.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport uint32_t

cdef extern from "crc32c_impl.h":
    int ER_CRC32C_HAVE_HW
    int er_crc32c_init() noexcept nogil
    uint32_t er_crc32c_sw(uint32_t crc, const char *buf, size_t n) noexcept nogil
    uint32_t er_crc32c_hw(uint32_t crc, const char *buf, size_t n) noexcept nogil
    void er_crc32c_sw_x3(uint32_t *crc, const char **buf, const size_t *n) noexcept nogil
    void er_crc32c_hw_x3(uint32_t *crc, const char **buf, const size_t *n) noexcept nogil
    void er_crc32c_copy_sw_x3(uint32_t *crc, char **dst, const char **src, const size_t *n) noexcept nogil
    void er_crc32c_hw_copy_x3(uint32_t *crc, char **dst, const char **src, const size_t *n) noexcept nogil
    void er_crc32c_prefix_copy_sw_x3(uint32_t *crc, const char **prefix, size_t plen, char **dst,
                                     const char **src, const size_t *n) noexcept nogil
    void er_crc32c_hw_prefix_copy_x3(uint32_t *crc, const char **prefix, size_t plen, char **dst,
                                     const char **src, const size_t *n) noexcept nogil
    void er_crc32c_clmul_prefix_copy_x3(uint32_t *crc, const char **prefix, size_t plen, char **dst,
                                        const char **src, const size_t *n) noexcept nogil
    int er_crc32c_cpu_has_clmul() noexcept nogil

ctypedef uint32_t (*update_fn)(uint32_t, const char *, size_t) noexcept nogil
ctypedef void (*update_x3_fn)(uint32_t *, const char **, const size_t *) noexcept nogil
ctypedef void (*copy_x3_fn)(uint32_t *, char **, const char **, const size_t *) noexcept nogil
ctypedef void (*prefix_copy_x3_fn)(uint32_t *, const char **, size_t, char **, const char **,
                                   const size_t *) noexcept nogil

# Buffers at least this long are checksummed without the GIL: below it the
# release/reacquire costs more than it frees (~1 µs of work at 10 GB/s+).
DEF NOGIL_THRESHOLD = 64 * 1024

cdef bint _cpu_has_hw = er_crc32c_init()
cdef bint _cpu_has_clmul = _cpu_has_hw and er_crc32c_cpu_has_clmul()
cdef update_fn _update = er_crc32c_hw if _cpu_has_hw else er_crc32c_sw
cdef update_x3_fn _update_x3 = er_crc32c_hw_x3 if _cpu_has_hw else er_crc32c_sw_x3
cdef copy_x3_fn _copy_x3 = er_crc32c_hw_copy_x3 if _cpu_has_hw else er_crc32c_copy_sw_x3
# The WAL encoder's kernel: crc32 + VPCLMULQDQ where the CPU has both (see
# crc32c_impl.h for why), else crc32 alone, else tables.
cdef prefix_copy_x3_fn _prefix_copy_x3 = (
    er_crc32c_clmul_prefix_copy_x3 if _cpu_has_clmul
    else er_crc32c_hw_prefix_copy_x3 if _cpu_has_hw else er_crc32c_prefix_copy_sw_x3)

#: True when this build and CPU can use the SSE4.2 instruction.
HAVE_HARDWARE = bool(_cpu_has_hw)
#: True when the WAL record kernel can also fold with VPCLMULQDQ (AVX2).
HAVE_CLMUL = bool(_cpu_has_clmul)


cdef uint32_t crc32c_update(uint32_t crc, const char *buf, Py_ssize_t n) noexcept nogil:
    return _update(crc, buf, <size_t>n)


cdef void crc32c_update_x3(uint32_t *crc, const char **buf, const size_t *n) noexcept nogil:
    _update_x3(crc, buf, n)


cdef void crc32c_copy_update_x3(uint32_t *crc, char **dst, const char **src,
                                const size_t *n) noexcept nogil:
    _copy_x3(crc, dst, src, n)


cdef void crc32c_prefix_copy_update_x3(uint32_t *crc, const char **prefix, size_t plen,
                                       char **dst, const char **src, const size_t *n) noexcept nogil:
    _prefix_copy_x3(crc, prefix, plen, dst, src, n)


cdef uint32_t _run(update_fn fn, object data, uint32_t crc) except? 0xFFFFFFFF:
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len >= NOGIL_THRESHOLD:
            with nogil:
                crc = fn(crc, <const char *>view.buf, <size_t>view.len)
        else:
            crc = fn(crc, <const char *>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return crc


def crc32c(data, uint32_t crc=0):
    """Return the CRC-32C of `data` (any buffer), continuing from `crc`."""
    return _run(_update, data, crc)


def crc32c_table(data, uint32_t crc=0):
    """Return the CRC-32C of `data` computed with the portable table path."""
    return _run(er_crc32c_sw, data, crc)


def crc32c_hardware(data, uint32_t crc=0):
    """Return the CRC-32C of `data` computed with the SSE4.2 path.

    Raises RuntimeError when this CPU or build has no such path.
    """
    if not _cpu_has_hw:
        raise RuntimeError("crc32c: the SSE4.2 crc32 instruction is not available here")
    return _run(er_crc32c_hw, data, crc)


def crc32c_x3(a, b, c, uint32_t crc_a=0, uint32_t crc_b=0, uint32_t crc_c=0):
    """Return the CRC-32Cs of three buffers computed in lockstep (tests only)."""
    cdef uint32_t crcs[3]
    cdef const char *bufs[3]
    cdef size_t lens[3]
    cdef bytes ba = bytes(a), bb = bytes(b), bc = bytes(c)
    crcs[0] = crc_a; crcs[1] = crc_b; crcs[2] = crc_c
    bufs[0] = ba; bufs[1] = bb; bufs[2] = bc
    lens[0] = len(ba); lens[1] = len(bb); lens[2] = len(bc)
    _update_x3(crcs, bufs, lens)
    return crcs[0], crcs[1], crcs[2]


def crc32c_copy_x3(a, b, c):
    """Return ((copy_a, copy_b, copy_c), (crc_a, crc_b, crc_c)) from the fused
    copy-and-checksum kernel (tests only)."""
    cdef uint32_t crcs[3]
    cdef const char *src[3]
    cdef char *dst[3]
    cdef size_t lens[3]
    cdef bytes ba = bytes(a), bb = bytes(b), bc = bytes(c)
    cdef bytearray oa = bytearray(len(ba)), ob = bytearray(len(bb)), oc = bytearray(len(bc))
    crcs[0] = crcs[1] = crcs[2] = 0
    src[0] = ba; src[1] = bb; src[2] = bc
    dst[0] = oa; dst[1] = ob; dst[2] = oc
    lens[0] = len(ba); lens[1] = len(bb); lens[2] = len(bc)
    _copy_x3(crcs, dst, src, lens)
    return (bytes(oa), bytes(ob), bytes(oc)), (crcs[0], crcs[1], crcs[2])


def crc32c_prefix_copy_x3(prefixes, payloads):
    """Return (copies, crcs) from the fused prefix+copy kernel for three
    equal-length prefixes and three payloads (tests only)."""
    cdef uint32_t crcs[3]
    cdef const char *pre[3]
    cdef const char *src[3]
    cdef char *dst[3]
    cdef size_t lens[3]
    cdef list keep = [bytes(p) for p in prefixes] + [bytes(p) for p in payloads]
    cdef list outs = [bytearray(len(keep[3 + i])) for i in range(3)]
    cdef Py_ssize_t plen = len(keep[0])
    if len(keep[1]) != plen or len(keep[2]) != plen:
        raise ValueError("crc32c: prefixes must have the same length")
    for i in range(3):
        crcs[i] = 0
        pre[i] = <bytes>keep[i]
        src[i] = <bytes>keep[3 + i]
        dst[i] = <char *>(<bytearray>outs[i])
        lens[i] = len(keep[3 + i])
    _prefix_copy_x3(crcs, pre, <size_t>plen, dst, src, lens)
    return tuple(bytes(o) for o in outs), (crcs[0], crcs[1], crcs[2])


def use_implementation(str name):
    """Select the path crc32c() and the WAL use: "clmul", "hardware", "table" or "auto".

    "clmul" is "hardware" with the WAL record kernel also folding with
    VPCLMULQDQ. For tests and benchmarks that must exercise a fallback on a
    CPU that has the faster path. Returns the name of the path now in use.
    """
    global _update, _update_x3, _copy_x3, _prefix_copy_x3
    if name == "auto":
        name = "clmul" if _cpu_has_clmul else "hardware" if _cpu_has_hw else "table"
    if name == "clmul":
        if not _cpu_has_clmul:
            raise RuntimeError("crc32c: AVX2 + VPCLMULQDQ are not available here")
        _update, _update_x3, _copy_x3 = er_crc32c_hw, er_crc32c_hw_x3, er_crc32c_hw_copy_x3
        _prefix_copy_x3 = er_crc32c_clmul_prefix_copy_x3
    elif name == "hardware":
        if not _cpu_has_hw:
            raise RuntimeError("crc32c: the SSE4.2 crc32 instruction is not available here")
        _update, _update_x3, _copy_x3 = er_crc32c_hw, er_crc32c_hw_x3, er_crc32c_hw_copy_x3
        _prefix_copy_x3 = er_crc32c_hw_prefix_copy_x3
    elif name == "table":
        _update, _update_x3, _copy_x3 = er_crc32c_sw, er_crc32c_sw_x3, er_crc32c_copy_sw_x3
        _prefix_copy_x3 = er_crc32c_prefix_copy_sw_x3
    else:
        raise ValueError(f"crc32c: unknown implementation {name!r}")
    return name


def implementation():
    """Return the name of the path in use: "clmul", "hardware" or "table"."""
    if _prefix_copy_x3 == er_crc32c_clmul_prefix_copy_x3:
        return "clmul"
    return "hardware" if _update == er_crc32c_hw else "table"
