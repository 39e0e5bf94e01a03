/*
 * cxsha256.c - freestanding SHA-256 (FIPS 180-4) for the cosmoext runtime.
 *
 * Portable C99; includes only <stdint.h> and <stddef.h> (through the header)
 * and calls no library function.  Input is read one byte at a time, so any
 * alignment is fine and there is no type punning.
 *
 * Compilers may turn simple byte loops into calls to memcpy/memset.  The
 * only such loops here work on at most 64 bytes per call and write through a
 * volatile pointer, which keeps them as loops (and keeps the final wipe of
 * the context from being optimised away); the test suite checks that the
 * object file has no undefined symbols.
 */
#include "cxsha256.h"

/* 0u + x: arithmetic in at least unsigned int, so shifts never happen in a
 * promoted signed int on targets where int is wider than 32 bits. */
#define CX_U32(x) ((uint32_t)(x))
#define CX_ROTR(x, n) CX_U32(((0u + (x)) >> (n)) | ((0u + (x)) << (32 - (n))))

#define CX_CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define CX_MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define CX_BSIG0(x) (CX_ROTR(x, 2) ^ CX_ROTR(x, 13) ^ CX_ROTR(x, 22))
#define CX_BSIG1(x) (CX_ROTR(x, 6) ^ CX_ROTR(x, 11) ^ CX_ROTR(x, 25))
#define CX_SSIG0(x) (CX_ROTR(x, 7) ^ CX_ROTR(x, 18) ^ CX_U32((0u + (x)) >> 3))
#define CX_SSIG1(x) (CX_ROTR(x, 17) ^ CX_ROTR(x, 19) ^ CX_U32((0u + (x)) >> 10))

/* Round constants: first 32 bits of the fractional parts of the cube roots
 * of the first 64 primes (FIPS 180-4, 4.2.2). */
static const uint32_t cx_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u,
    0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu,
    0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u,
    0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u,
    0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static uint32_t cx_load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void cx_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One round.  Instead of shifting the eight working variables each round,
 * the callers rotate the names passed in, so every round is the same code
 * with different registers. */
#define CX_ROUND(a, b, c, d, e, f, g, h, kv, wv)                             \
    do {                                                                     \
        uint32_t t1_ = h + CX_BSIG1(e) + CX_CH(e, f, g) + (kv) + (wv);       \
        d += t1_;                                                            \
        h = t1_ + CX_BSIG0(a) + CX_MAJ(a, b, c);                             \
    } while (0)

/* Message schedule kept as a 16-word ring: w[j & 15] is W[t] for the
 * current t.  With rounds unrolled in groups of 16 every index is constant. */
#define CX_SCHED(j)                                                          \
    (w[(j) & 15] += CX_SSIG1(w[((j) + 14) & 15]) + w[((j) + 9) & 15] +       \
                    CX_SSIG0(w[((j) + 1) & 15]))

#define CX_ROUNDS8(base, WEXPR)                                              \
    do {                                                                     \
        CX_ROUND(a, b, c, d, e, f, g, h, k[(base) + 0], WEXPR((base) + 0));  \
        CX_ROUND(h, a, b, c, d, e, f, g, k[(base) + 1], WEXPR((base) + 1));  \
        CX_ROUND(g, h, a, b, c, d, e, f, k[(base) + 2], WEXPR((base) + 2));  \
        CX_ROUND(f, g, h, a, b, c, d, e, k[(base) + 3], WEXPR((base) + 3));  \
        CX_ROUND(e, f, g, h, a, b, c, d, k[(base) + 4], WEXPR((base) + 4));  \
        CX_ROUND(d, e, f, g, h, a, b, c, k[(base) + 5], WEXPR((base) + 5));  \
        CX_ROUND(c, d, e, f, g, h, a, b, k[(base) + 6], WEXPR((base) + 6));  \
        CX_ROUND(b, c, d, e, f, g, h, a, k[(base) + 7], WEXPR((base) + 7));  \
    } while (0)

#define CX_WLOAD(j) (w[(j) & 15] = cx_load_be32(p + 4 * ((j) & 15)))

static void cx_sha256_blocks(uint32_t state[8], const uint8_t *p, size_t nblocks)
{
    uint32_t w[16];

    while (nblocks-- > 0) {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        const uint32_t *k = cx_k;
        int r;

        CX_ROUNDS8(0, CX_WLOAD);
        CX_ROUNDS8(8, CX_WLOAD);
        for (r = 0; r < 3; r++) {
            k += 16;
            CX_ROUNDS8(0, CX_SCHED);
            CX_ROUNDS8(8, CX_SCHED);
        }

        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        p += CX_SHA256_BLOCK_SIZE;
    }
}

void cx_sha256_init(struct cx_sha256_ctx *ctx)
{
    /* First 32 bits of the fractional parts of the square roots of the
     * first 8 primes (FIPS 180-4, 5.3.3). */
    ctx->state[0] = 0x6a09e667u;
    ctx->state[1] = 0xbb67ae85u;
    ctx->state[2] = 0x3c6ef372u;
    ctx->state[3] = 0xa54ff53au;
    ctx->state[4] = 0x510e527fu;
    ctx->state[5] = 0x9b05688cu;
    ctx->state[6] = 0x1f83d9abu;
    ctx->state[7] = 0x5be0cd19u;
    ctx->total = 0;
    ctx->buflen = 0;
}

/* Byte copy that the compiler will not turn into a memcpy call. */
static void cx_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    volatile uint8_t *d = dst;
    size_t i;

    for (i = 0; i < n; i++)
        d[i] = src[i];
}

static void cx_fill(uint8_t *dst, uint8_t v, size_t n)
{
    volatile uint8_t *d = dst;
    size_t i;

    for (i = 0; i < n; i++)
        d[i] = v;
}

void cx_sha256_update(struct cx_sha256_ctx *ctx, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;

    if (len == 0)
        return;
    ctx->total += (uint64_t)len;

    if (ctx->buflen != 0) {
        size_t room = CX_SHA256_BLOCK_SIZE - ctx->buflen;
        size_t take = len < room ? len : room;

        cx_copy(ctx->buf + ctx->buflen, p, take);
        ctx->buflen += (uint32_t)take;
        p += take;
        len -= take;
        if (ctx->buflen < CX_SHA256_BLOCK_SIZE)
            return;
        cx_sha256_blocks(ctx->state, ctx->buf, 1);
        ctx->buflen = 0;
    }

    if (len >= CX_SHA256_BLOCK_SIZE) {
        size_t n = len / CX_SHA256_BLOCK_SIZE;

        cx_sha256_blocks(ctx->state, p, n);
        p += n * CX_SHA256_BLOCK_SIZE;
        len -= n * CX_SHA256_BLOCK_SIZE;
    }

    if (len != 0) {
        cx_copy(ctx->buf, p, len);
        ctx->buflen = (uint32_t)len;
    }
}

void cx_sha256_final(struct cx_sha256_ctx *ctx, uint8_t out[CX_SHA256_DIGEST_SIZE])
{
    uint64_t bits = ctx->total << 3;
    uint32_t n = ctx->buflen;
    int i;

    ctx->buf[n++] = 0x80;
    if (n > CX_SHA256_BLOCK_SIZE - 8) {
        cx_fill(ctx->buf + n, 0, CX_SHA256_BLOCK_SIZE - n);
        cx_sha256_blocks(ctx->state, ctx->buf, 1);
        n = 0;
    }
    cx_fill(ctx->buf + n, 0, CX_SHA256_BLOCK_SIZE - 8 - n);
    cx_store_be32(ctx->buf + 56, (uint32_t)(bits >> 32));
    cx_store_be32(ctx->buf + 60, (uint32_t)bits);
    cx_sha256_blocks(ctx->state, ctx->buf, 1);

    for (i = 0; i < 8; i++)
        cx_store_be32(out + 4 * i, ctx->state[i]);

    /* Wipe: state, length and buffered input. */
    cx_fill((uint8_t *)(void *)ctx, 0, sizeof *ctx);
}

void cx_sha256(const void *data, size_t len, uint8_t out[CX_SHA256_DIGEST_SIZE])
{
    struct cx_sha256_ctx ctx;

    cx_sha256_init(&ctx);
    cx_sha256_update(&ctx, data, len);
    cx_sha256_final(&ctx, out);
}
