/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) kernels.
 *
 * Implementations behind dispatch pointers chosen once at import:
 *  - er_crc32c_sw: slicing-by-8 tables, portable C (any CPU, any endianness);
 *  - er_crc32c_hw: the SSE4.2 crc32 instruction (x86-64 only), with three
 *    interleaved streams over large buffers, after Mark Adler's crc32c.c
 *    (the crc32c package does the same): the instruction has a latency of 3
 *    cycles and a throughput of 1, so three independent streams keep the unit
 *    busy; the partial CRCs are combined with precomputed "append N zero
 *    bytes" operators.
 *  - er_crc32c_clmul_prefix_copy_x3: for WAL record triples only, the crc32
 *    instruction and VPCLMULQDQ folding on disjoint parts of each record
 *    (x86-64 with AVX2 + VPCLMULQDQ; why and how at its definition).
 * The hw functions are compiled with __attribute__((target("sse4.2"))) so the
 * rest of the extension needs no -msse4.2 and still loads on CPUs without it;
 * er_crc32c_init() picks it only when __builtin_cpu_supports says so (the
 * hybrid kernel likewise, with er_crc32c_cpu_has_clmul()).
 *
 * All entry points take and return the finished CRC (as zlib.crc32 and
 * crcmod do), so crc(a + b) == update(update(0, a), b).
 */
#ifndef EASYRAFT_CRC32C_IMPL_H
#define EASYRAFT_CRC32C_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ER_CRC32C_POLY 0x82f63b78u

/* er_crc32c_table[k][n]: CRC register contribution of byte n followed by k zero bytes. */
static uint32_t er_crc32c_table[8][256];

static uint32_t er_crc32c_sw(uint32_t crc, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint64_t c = crc ^ 0xffffffffu;
    while (len && ((uintptr_t)p & 7) != 0) {
        c = er_crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);   /* the tables assume little-endian byte order */
#endif
        w ^= c;
        c = er_crc32c_table[7][w & 0xff] ^ er_crc32c_table[6][(w >> 8) & 0xff] ^
            er_crc32c_table[5][(w >> 16) & 0xff] ^ er_crc32c_table[4][(w >> 24) & 0xff] ^
            er_crc32c_table[3][(w >> 32) & 0xff] ^ er_crc32c_table[2][(w >> 40) & 0xff] ^
            er_crc32c_table[1][(w >> 48) & 0xff] ^ er_crc32c_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = er_crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return (uint32_t)c ^ 0xffffffffu;
}

/* Three independent buffers, one after the other (the portable twin of
 * er_crc32c_hw_x3; tables gain nothing from interleaving). */
static void er_crc32c_sw_x3(uint32_t *crc, const char **buf, const size_t *len)
{
    crc[0] = er_crc32c_sw(crc[0], buf[0], len[0]);
    crc[1] = er_crc32c_sw(crc[1], buf[1], len[1]);
    crc[2] = er_crc32c_sw(crc[2], buf[2], len[2]);
}

static void er_crc32c_copy_sw_x3(uint32_t *crc, char **dst, const char **src, const size_t *len)
{
    for (int i = 0; i < 3; i++) {
        memcpy(dst[i], src[i], len[i]);
        crc[i] = er_crc32c_sw(crc[i], dst[i], len[i]);
    }
}

static void er_crc32c_prefix_copy_sw_x3(uint32_t *crc, const char **prefix, size_t plen,
                                        char **dst, const char **src, const size_t *len)
{
    for (int i = 0; i < 3; i++)
        crc[i] = er_crc32c_sw(crc[i], prefix[i], plen);
    er_crc32c_copy_sw_x3(crc, dst, src, len);
}

/* ER_CRC32C_NO_HW builds the portable path only, as on a non-x86 CPU
 * (used to check that build; the runtime switch is use_implementation()). */
#if !defined(ER_CRC32C_NO_HW) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ER_CRC32C_HAVE_HW 1
#include <nmmintrin.h>
#include <immintrin.h>

/* Block sizes of the interleaved loops (Adler's choice): LONG amortises the
 * two shifts per 24 KiB; SHORT catches buffers between 768 B and 24 KiB. */
#define ER_CRC32C_LONG 8192
#define ER_CRC32C_SHORT 256
/* er_crc32c_long[k][n]: operator "append LONG zero bytes" applied to byte n at position k. */
static uint32_t er_crc32c_long[4][256];
static uint32_t er_crc32c_short[4][256];

static uint32_t er_gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1)
            sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void er_gf2_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        square[n] = er_gf2_times(mat, mat[n]);
}

/* Operator that appends len zero bytes to a CRC register; len is a power of two. */
static void er_crc32c_zeros_op(uint32_t *even, size_t len)
{
    uint32_t odd[32];
    uint32_t row = 1;
    odd[0] = ER_CRC32C_POLY;    /* one zero bit */
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    er_gf2_square(even, odd);   /* two zero bits */
    er_gf2_square(odd, even);   /* four zero bits */
    do {                        /* each square doubles: first pass makes one byte */
        er_gf2_square(even, odd);
        len >>= 1;
        if (len == 0)
            return;
        er_gf2_square(odd, even);
        len >>= 1;
    } while (len);
    memcpy(even, odd, sizeof(odd));
}

static void er_crc32c_zeros(uint32_t zeros[][256], size_t len)
{
    uint32_t op[32];
    er_crc32c_zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = er_gf2_times(op, n);
        zeros[1][n] = er_gf2_times(op, n << 8);
        zeros[2][n] = er_gf2_times(op, n << 16);
        zeros[3][n] = er_gf2_times(op, n << 24);
    }
}

static inline uint64_t er_crc32c_shift(uint32_t zeros[][256], uint64_t crc)
{
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
           zeros[2][(crc >> 16) & 0xff] ^ zeros[3][(crc >> 24) & 0xff];
}

/* Fewer than 8 bytes: at most three dependent instructions instead of seven. */
__attribute__((target("sse4.2")))
static inline uint64_t er_crc32c_hw_tail(uint64_t c, const unsigned char *p, size_t len)
{
    if (len & 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        c = _mm_crc32_u32((uint32_t)c, w);
        p += 4;
    }
    if (len & 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        c = _mm_crc32_u16((uint32_t)c, w);
        p += 2;
    }
    if (len & 1)
        c = _mm_crc32_u8((uint32_t)c, *p);
    return c;
}

__attribute__((target("sse4.2")))
static uint64_t er_crc32c_hw_serial(uint64_t c, const unsigned char *p, size_t len)
{
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
    return er_crc32c_hw_tail(c, p, len);
}

/* Copy len bytes and checksum them in one pass: the loads feed both the
 * store and the crc32 instruction, so the copy hides under the CRC's
 * 1-per-cycle throughput instead of costing a second pass. */
__attribute__((target("sse4.2")))
static inline __attribute__((always_inline)) uint64_t er_crc32c_hw_copy_serial(uint64_t c, unsigned char *d, const unsigned char *s, size_t len)
{
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        memcpy(d, &w, 8);
        c = _mm_crc32_u64(c, w);
        s += 8;
        d += 8;
        len -= 8;
    }
    /* len < 8: inline moves, not a libc memcpy call (three per record triple). */
    if (len & 4)
        memcpy(d, s, 4);
    if (len & 2)
        memcpy(d + (len & 4), s + (len & 4), 2);
    if (len & 1)
        d[len - 1] = s[len - 1];
    return er_crc32c_hw_tail(c, s, len);
}

__attribute__((target("sse4.2")))
static uint32_t er_crc32c_hw(uint32_t crc, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned char *end;
    uint64_t c0 = crc ^ 0xffffffffu, c1, c2;
    while (len && ((uintptr_t)p & 7) != 0) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        len--;
    }
    /* Streams 1 and 2 start from a zero register: by linearity,
     * crc(A.B) = shift(crc(A), |B|) ^ crc0(B). */
    while (len >= 3 * ER_CRC32C_LONG) {
        c1 = c2 = 0;
        end = p + ER_CRC32C_LONG;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, p, 8);
            memcpy(&w1, p + ER_CRC32C_LONG, 8);
            memcpy(&w2, p + 2 * ER_CRC32C_LONG, 8);
            c0 = _mm_crc32_u64(c0, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
            p += 8;
        } while (p < end);
        c0 = er_crc32c_shift(er_crc32c_long, c0) ^ c1;
        c0 = er_crc32c_shift(er_crc32c_long, c0) ^ c2;
        p += 2 * ER_CRC32C_LONG;
        len -= 3 * ER_CRC32C_LONG;
    }
    while (len >= 3 * ER_CRC32C_SHORT) {
        c1 = c2 = 0;
        end = p + ER_CRC32C_SHORT;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, p, 8);
            memcpy(&w1, p + ER_CRC32C_SHORT, 8);
            memcpy(&w2, p + 2 * ER_CRC32C_SHORT, 8);
            c0 = _mm_crc32_u64(c0, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
            p += 8;
        } while (p < end);
        c0 = er_crc32c_shift(er_crc32c_short, c0) ^ c1;
        c0 = er_crc32c_shift(er_crc32c_short, c0) ^ c2;
        p += 2 * ER_CRC32C_SHORT;
        len -= 3 * ER_CRC32C_SHORT;
    }
    return (uint32_t)er_crc32c_hw_serial(c0, p, len) ^ 0xffffffffu;
}

/* Load crc[0..2] as three separate 4-byte loads, inverted into raw register
 * values. The caller has just stored them one u32 at a time; left alone, the
 * compiler merges the loads into one 8-byte vector load, which spans two
 * stores, misses store-to-load forwarding and stalls ~20 cycles at the start
 * of every call (measured: a third of a WAL encode of small records). */
static inline void er_crc32c_load3(const uint32_t *crc, uint64_t *c0, uint64_t *c1, uint64_t *c2)
{
    *c0 = ((const volatile uint32_t *)crc)[0] ^ 0xffffffffu;
    *c1 = ((const volatile uint32_t *)crc)[1] ^ 0xffffffffu;
    *c2 = ((const volatile uint32_t *)crc)[2] ^ 0xffffffffu;
}

/* Three independent buffers (e.g. three WAL records) in lockstep over their
 * common length, so the crc32 unit sees three dependency chains. */
__attribute__((target("sse4.2")))
static void er_crc32c_hw_x3(uint32_t *crc, const char **buf, const size_t *len)
{
    const unsigned char *p0 = (const unsigned char *)buf[0];
    const unsigned char *p1 = (const unsigned char *)buf[1];
    const unsigned char *p2 = (const unsigned char *)buf[2];
    uint64_t c0, c1, c2;
    er_crc32c_load3(crc, &c0, &c1, &c2);
    size_t m = len[0] < len[1] ? len[0] : len[1];
    if (len[2] < m)
        m = len[2];
    m &= ~(size_t)7;
    for (size_t i = 0; i < m; i += 8) {
        uint64_t w0, w1, w2;
        memcpy(&w0, p0 + i, 8);
        memcpy(&w1, p1 + i, 8);
        memcpy(&w2, p2 + i, 8);
        c0 = _mm_crc32_u64(c0, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
    }
    crc[0] = (uint32_t)er_crc32c_hw_serial(c0, p0 + m, len[0] - m) ^ 0xffffffffu;
    crc[1] = (uint32_t)er_crc32c_hw_serial(c1, p1 + m, len[1] - m) ^ 0xffffffffu;
    crc[2] = (uint32_t)er_crc32c_hw_serial(c2, p2 + m, len[2] - m) ^ 0xffffffffu;
}

/* er_crc32c_hw_x3 fused with copying: dst[i] receives n[i] bytes of src[i]. */
__attribute__((target("sse4.2")))
static inline void er_crc32c_hw_copy_x3_raw(uint32_t *crc, uint64_t c0, uint64_t c1, uint64_t c2,
                                            char **dst, const char **src, const size_t *len)
{
    const unsigned char *s0 = (const unsigned char *)src[0];
    const unsigned char *s1 = (const unsigned char *)src[1];
    const unsigned char *s2 = (const unsigned char *)src[2];
    unsigned char *d0 = (unsigned char *)dst[0], *d1 = (unsigned char *)dst[1], *d2 = (unsigned char *)dst[2];
    size_t m = len[0] < len[1] ? len[0] : len[1];
    if (len[2] < m)
        m = len[2];
    m &= ~(size_t)15;
    /* 16 bytes per stream per step: the copy moves them with one 16-byte
     * load and store, the CRC reads them again as two words. Stores are the
     * scarce port (one per cycle on Zen 2); 8-byte stores made the copy,
     * not the CRC, the bottleneck (~100 vs ~70 ns per three 512 B records). */
    for (size_t i = 0; i < m; i += 16) {
        uint64_t a0, b0, a1, b1, a2, b2;
        memcpy(d0 + i, s0 + i, 16);
        memcpy(d1 + i, s1 + i, 16);
        memcpy(d2 + i, s2 + i, 16);
        memcpy(&a0, s0 + i, 8);
        memcpy(&b0, s0 + i + 8, 8);
        memcpy(&a1, s1 + i, 8);
        memcpy(&b1, s1 + i + 8, 8);
        memcpy(&a2, s2 + i, 8);
        memcpy(&b2, s2 + i + 8, 8);
        c0 = _mm_crc32_u64(c0, a0);
        c1 = _mm_crc32_u64(c1, a1);
        c2 = _mm_crc32_u64(c2, a2);
        c0 = _mm_crc32_u64(c0, b0);
        c1 = _mm_crc32_u64(c1, b1);
        c2 = _mm_crc32_u64(c2, b2);
    }
    crc[0] = (uint32_t)er_crc32c_hw_copy_serial(c0, d0 + m, s0 + m, len[0] - m) ^ 0xffffffffu;
    crc[1] = (uint32_t)er_crc32c_hw_copy_serial(c1, d1 + m, s1 + m, len[1] - m) ^ 0xffffffffu;
    crc[2] = (uint32_t)er_crc32c_hw_copy_serial(c2, d2 + m, s2 + m, len[2] - m) ^ 0xffffffffu;
}

__attribute__((target("sse4.2")))
static void er_crc32c_hw_copy_x3(uint32_t *crc, char **dst, const char **src, const size_t *len)
{
    uint64_t c0, c1, c2;
    er_crc32c_load3(crc, &c0, &c1, &c2);
    er_crc32c_hw_copy_x3_raw(crc, c0, c1, c2, dst, src, len);
}

/* When plen % 8 == 4, checksum the first 4 bytes of each prefix as one u32
 * so that the 8-byte loads after it line up with the words the WAL header
 * writer stores (walrec._write_entry_prefix): a load that spans two earlier
 * stores cannot be forwarded from the store buffer and waits ~20 cycles for
 * them to retire, on every record's dependency chain. Returns the bytes done. */
__attribute__((target("sse4.2")))
static inline size_t er_crc32c_hw_lead_x3(uint64_t *c, const char **prefix, size_t plen)
{
    if ((plen & 7) != 4)
        return 0;
    for (int k = 0; k < 3; k++) {
        uint32_t w;
        memcpy(&w, prefix[k], 4);
        c[k] = _mm_crc32_u32((uint32_t)c[k], w);
    }
    return 4;
}

/* Three (prefix, copied payload) pairs in one pass, e.g. three WAL records:
 * crc[i] = crc of prefix[i] (plen bytes, the same for all three) followed by
 * the n[i] bytes copied from src[i] to dst[i]. One call per three records
 * instead of two, and the prefix words also run in lockstep. */
__attribute__((target("sse4.2")))
static void er_crc32c_hw_prefix_copy_x3(uint32_t *crc, const char **prefix, size_t plen,
                                        char **dst, const char **src, const size_t *len)
{
    uint64_t c[3];
    er_crc32c_load3(crc, &c[0], &c[1], &c[2]);
    size_t i = er_crc32c_hw_lead_x3(c, prefix, plen);
    for (; i + 8 <= plen; i += 8) {
        uint64_t w0, w1, w2;
        memcpy(&w0, prefix[0] + i, 8);
        memcpy(&w1, prefix[1] + i, 8);
        memcpy(&w2, prefix[2] + i, 8);
        c[0] = _mm_crc32_u64(c[0], w0);
        c[1] = _mm_crc32_u64(c[1], w1);
        c[2] = _mm_crc32_u64(c[2], w2);
    }
    for (int k = 0; k < 3; k++)
        c[k] = er_crc32c_hw_tail(c[k], (const unsigned char *)prefix[k] + i, plen - i);
    er_crc32c_hw_copy_x3_raw(crc, c[0], c[1], c[2], dst, src, len);
}

/* ---- Hybrid kernel: crc32 instruction and VPCLMULQDQ folding together ----
 *
 * Why: the crc32 instruction retires one 8-byte step per cycle, and the
 * encoder's checksum of a 64 x 512 B batch alone took ~1.3x a plain join of
 * the payloads. A carry-less multiply folds 16 bytes per 64x64 product on a
 * different execution unit, so running both on disjoint parts of each record
 * checksums more bytes per cycle than either alone (measured here, AMD Zen 3:
 * 12 crc32 + 6 ymm VPCLMULQDQ per 6.1 ns against 4.3 ns for the 12 crc32
 * alone, i.e. 1.43x the bytes per ns; not the 2x of separate units, since
 * the two share issue bandwidth).
 *
 * How, for three records in lockstep (payload lengths n0, n1, n2; the common
 * step count m = min(n) / 64, capped at ER_CRC32C_MMAX):
 *   bytes [0, 32m)   crc32 instruction, continuing from the prefix's CRC,
 *                    four words per record per step;
 *   bytes [32m, 64m) folded 32 bytes per step into one ymm accumulator per
 *                    record (two 128-bit lanes, fold distance 256 bits);
 *   bytes [64m, n)   crc32 instruction again, continuing from the combined
 *                    value (fewer than 64 bytes when the lengths are equal).
 * The payload is copied to dst in the same pass (one 32-byte load feeds the
 * store and the fold; the crc32 side reloads its words from L1).
 * Combining needs no length-dependent shift: the crc32 state c after [0, 32m)
 * belongs XORed into the first 4 bytes of [32m, 64m) (crc32(c, w) ==
 * crc32(0, w ^ c)); that block has been folded forward m - 1 times by then,
 * so c is multiplied by x^(256(m-1)) mod P with one carry-less multiply by the
 * precomputed er_crc32c_kinj[m] and XORed into the accumulator's low lane.
 * The accumulator's 32 bytes are then reduced with four crc32 instructions
 * from 0 (crc32 from 0 over a block X gives X * x^32 mod P), which yields
 * the raw CRC state after byte 64m (two fewer multiplies than folding the
 * lanes to 128 bits first).
 *
 * Constants (reflected, the usual "x^(d+31), x^(d-33)" pair for a fold over d
 * bits: the 64x64 product of two reflected operands comes out shifted by one
 * bit, which the -33/+31 absorb): d = 256: x^287, x^223;
 * er_crc32c_kinj[m] = x^(256(m-1)+31). tests/storage/test_crc32c.py checks
 * every length and prefix against the table path and crcmod.
 *
 * Limits: x86-64 with AVX2 and VPCLMULQDQ (Intel Ice Lake, AMD Zen 3 and
 * later), detected at run time; elsewhere the crc32-only kernel above runs.
 * Payloads under 64 bytes in a triple use that kernel too (m == 0), and the
 * lockstep covers only the shortest payload of the three: records of very
 * different sizes gain less. */
#define ER_CRC32C_MMAX 128
/* er_crc32c_kinj[m] = x^(256(m-1)+31) mod P, reflected; index 0 unused. */
static uint32_t er_crc32c_kinj[ER_CRC32C_MMAX + 1];

/* table[m] = reflected x^(first + step(m-1)) mod P for m in [1, MMAX]. */
static void er_crc32c_xpow_table(uint32_t *table, unsigned first, unsigned step)
{
    /* r = x^k mod P in normal bit order (bit i is x^i); reflect to store. */
    uint32_t r = 1;
    unsigned k = 0, want = first;
    for (int m = 1; m <= ER_CRC32C_MMAX; m++, want += step) {
        for (; k < want; k++)
            r = (r << 1) ^ ((r >> 31) ? 0x1edc6f41u : 0);
        uint32_t v = r, rev = 0;
        for (int b = 0; b < 32; b++, v >>= 1)
            rev = (rev << 1) | (v & 1);
        table[m] = rev;
    }
}

static void er_crc32c_clmul_init(void)
{
    er_crc32c_xpow_table(er_crc32c_kinj, 31, 256);
}

#define ER_CRC32C_CLMUL_TARGET __attribute__((target("sse4.2,pclmul,avx2,vpclmulqdq")))

ER_CRC32C_CLMUL_TARGET
static inline uint64_t er_ld64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

ER_CRC32C_CLMUL_TARGET
static inline __m256i er_fold256(__m256i a, __m256i k, __m256i data)
{
    return _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(a, k, 0x00),
                                             _mm256_clmulepi64_epi128(a, k, 0x11)), data);
}

/* Same contract as er_crc32c_hw_prefix_copy_x3. */
ER_CRC32C_CLMUL_TARGET
static void er_crc32c_clmul_prefix_copy_x3(uint32_t *crc, const char **prefix, size_t plen,
                                           char **dst, const char **src, const size_t *len)
{
    uint64_t c[3];
    er_crc32c_load3(crc, &c[0], &c[1], &c[2]);
    size_t i = er_crc32c_hw_lead_x3(c, prefix, plen);
    for (; i + 8 <= plen; i += 8) {
        c[0] = _mm_crc32_u64(c[0], er_ld64(prefix[0] + i));
        c[1] = _mm_crc32_u64(c[1], er_ld64(prefix[1] + i));
        c[2] = _mm_crc32_u64(c[2], er_ld64(prefix[2] + i));
    }
    for (int k = 0; k < 3; k++)
        c[k] = er_crc32c_hw_tail(c[k], (const unsigned char *)prefix[k] + i, plen - i);
    size_t n = len[0] < len[1] ? len[0] : len[1];
    if (len[2] < n)
        n = len[2];
    size_t m = n / 64;
    if (m > ER_CRC32C_MMAX)
        m = ER_CRC32C_MMAX;
    if (m == 0) {
        er_crc32c_hw_copy_x3_raw(crc, c[0], c[1], c[2], dst, src, len);
        return;
    }
    const char *s0 = src[0], *s1 = src[1], *s2 = src[2];
    char *d0 = dst[0], *d1 = dst[1], *d2 = dst[2];
    uint64_t c0 = c[0], c1 = c[1], c2 = c[2];
    const size_t h = 32 * m;
    const __m256i k256 = _mm256_setr_epi32(0x3da6d0cb, 0, 0xba4fc28e, 0, 0x3da6d0cb, 0, 0xba4fc28e, 0);
    __m256i a0 = _mm256_loadu_si256((const __m256i *)(s0 + h));
    __m256i a1 = _mm256_loadu_si256((const __m256i *)(s1 + h));
    __m256i a2 = _mm256_loadu_si256((const __m256i *)(s2 + h));
    _mm256_storeu_si256((__m256i *)(d0 + h), a0);
    _mm256_storeu_si256((__m256i *)(d1 + h), a1);
    _mm256_storeu_si256((__m256i *)(d2 + h), a2);
    for (size_t j = 0;;) {
        /* crc32 side: bytes [j, j + 32) of each record. */
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(s0 + j));
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(s1 + j));
        __m256i x2 = _mm256_loadu_si256((const __m256i *)(s2 + j));
        _mm256_storeu_si256((__m256i *)(d0 + j), x0);
        _mm256_storeu_si256((__m256i *)(d1 + j), x1);
        _mm256_storeu_si256((__m256i *)(d2 + j), x2);
        for (int w = 0; w < 32; w += 8) {
            c0 = _mm_crc32_u64(c0, er_ld64(s0 + j + w));
            c1 = _mm_crc32_u64(c1, er_ld64(s1 + j + w));
            c2 = _mm_crc32_u64(c2, er_ld64(s2 + j + w));
        }
        j += 32;
        if (j == h)
            break;
        /* Folding side: bytes [h + j, h + j + 32). */
        __m256i y0 = _mm256_loadu_si256((const __m256i *)(s0 + h + j));
        __m256i y1 = _mm256_loadu_si256((const __m256i *)(s1 + h + j));
        __m256i y2 = _mm256_loadu_si256((const __m256i *)(s2 + h + j));
        _mm256_storeu_si256((__m256i *)(d0 + h + j), y0);
        _mm256_storeu_si256((__m256i *)(d1 + h + j), y1);
        _mm256_storeu_si256((__m256i *)(d2 + h + j), y2);
        a0 = er_fold256(a0, k256, y0);
        a1 = er_fold256(a1, k256, y1);
        a2 = er_fold256(a2, k256, y2);
    }
    const __m128i kinj = _mm_cvtsi32_si128((int)er_crc32c_kinj[m]);
    __m256i acc[3] = {a0, a1, a2};
    uint64_t cs[3] = {c0, c1, c2};
    for (int k = 0; k < 3; k++) {
        __m128i lo = _mm_xor_si128(_mm256_castsi256_si128(acc[k]),
                                   _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)cs[k]), kinj, 0x00));
        __m128i hi = _mm256_extracti128_si256(acc[k], 1);
        uint64_t st = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(lo));
        st = _mm_crc32_u64(st, (uint64_t)_mm_extract_epi64(lo, 1));
        st = _mm_crc32_u64(st, (uint64_t)_mm_cvtsi128_si64(hi));
        st = _mm_crc32_u64(st, (uint64_t)_mm_extract_epi64(hi, 1));
        size_t r = len[k] - 2 * h;
        if (r >= 3 * ER_CRC32C_SHORT) {
            memcpy(dst[k] + 2 * h, src[k] + 2 * h, r);
            crc[k] = er_crc32c_hw((uint32_t)st ^ 0xffffffffu, dst[k] + 2 * h, r);
        } else {
            crc[k] = (uint32_t)er_crc32c_hw_copy_serial(st, (unsigned char *)dst[k] + 2 * h,
                                                         (const unsigned char *)src[k] + 2 * h, r)
                     ^ 0xffffffffu;
        }
    }
}

static int er_crc32c_cpu_has_clmul(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("vpclmulqdq");
}

static int er_crc32c_cpu_has_hw(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}
#else
#define ER_CRC32C_HAVE_HW 0
static uint32_t er_crc32c_hw(uint32_t crc, const char *buf, size_t len) { return er_crc32c_sw(crc, buf, len); }
static void er_crc32c_hw_x3(uint32_t *crc, const char **buf, const size_t *len) { er_crc32c_sw_x3(crc, buf, len); }
static void er_crc32c_hw_copy_x3(uint32_t *crc, char **dst, const char **src, const size_t *len) { er_crc32c_copy_sw_x3(crc, dst, src, len); }
static void er_crc32c_hw_prefix_copy_x3(uint32_t *crc, const char **prefix, size_t plen, char **dst, const char **src, const size_t *len) { er_crc32c_prefix_copy_sw_x3(crc, prefix, plen, dst, src, len); }
static int er_crc32c_cpu_has_hw(void) { return 0; }
static void er_crc32c_clmul_prefix_copy_x3(uint32_t *crc, const char **prefix, size_t plen, char **dst, const char **src, const size_t *len) { er_crc32c_prefix_copy_sw_x3(crc, prefix, plen, dst, src, len); }
static int er_crc32c_cpu_has_clmul(void) { return 0; }
#endif

/* Fill the tables; returns 1 when the hardware path can be used. Idempotent. */
static int er_crc32c_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ ER_CRC32C_POLY : c >> 1;
        er_crc32c_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = er_crc32c_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = er_crc32c_table[0][c & 0xff] ^ (c >> 8);
            er_crc32c_table[k][n] = c;
        }
    }
#if ER_CRC32C_HAVE_HW
    er_crc32c_zeros(er_crc32c_long, ER_CRC32C_LONG);
    er_crc32c_zeros(er_crc32c_short, ER_CRC32C_SHORT);
    er_crc32c_clmul_init();
#endif
    return er_crc32c_cpu_has_hw();
}

#endif
