/* Little-endian fixed-width loads and stores for the codecs.
 * memcpy keeps them alignment-safe; compilers turn each into one mov. */
#ifndef EASYRAFT_ENDIAN_H
#define EASYRAFT_ENDIAN_H
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ER_BSWAP64(v) __builtin_bswap64(v)
#define ER_BSWAP32(v) __builtin_bswap32(v)
#else
#define ER_BSWAP64(v) (v)
#define ER_BSWAP32(v) (v)
#endif

/* Largest length a u32 field can carry, as a signed 64-bit C constant, so
 * Cython compares against it in C (a bare 0xFFFFFFFF literal becomes a
 * Python int and costs a PyLong per comparison). */
#define ER_U32_MAX ((int64_t)UINT32_MAX)

static inline void er_store_u64(char *p, uint64_t v) { v = ER_BSWAP64(v); memcpy(p, &v, 8); }
static inline void er_store_u32(char *p, uint32_t v) { v = ER_BSWAP32(v); memcpy(p, &v, 4); }
static inline uint64_t er_load_u64(const char *p) { uint64_t v; memcpy(&v, p, 8); return ER_BSWAP64(v); }
static inline uint32_t er_load_u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return ER_BSWAP32(v); }

#endif
