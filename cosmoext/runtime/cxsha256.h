/*
 * cxsha256.h - freestanding SHA-256 (FIPS 180-4) for the cosmoext runtime.
 *
 * Depends only on <stdint.h> and <stddef.h>; calls no library function
 * (not even memcpy/memset), so it can be linked into code that runs before
 * any libc is available.  Input may have any alignment: it is read byte by
 * byte and assembled big-endian.
 */
#ifndef CXSHA256_H
#define CXSHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CX_SHA256_DIGEST_SIZE 32
#define CX_SHA256_BLOCK_SIZE 64

struct cx_sha256_ctx {
    uint32_t state[8];
    uint64_t total;                     /* bytes hashed so far */
    uint8_t buf[CX_SHA256_BLOCK_SIZE];  /* pending partial block */
    uint32_t buflen;                    /* bytes pending in buf, < 64 */
};

void cx_sha256_init(struct cx_sha256_ctx *ctx);
void cx_sha256_update(struct cx_sha256_ctx *ctx, const void *data, size_t len);
/* Writes the digest and wipes the context; re-init before reuse. */
void cx_sha256_final(struct cx_sha256_ctx *ctx, uint8_t out[CX_SHA256_DIGEST_SIZE]);

/* One-shot convenience wrapper. */
void cx_sha256(const void *data, size_t len, uint8_t out[CX_SHA256_DIGEST_SIZE]);

#ifdef __cplusplus
}
#endif

#endif /* CXSHA256_H */
