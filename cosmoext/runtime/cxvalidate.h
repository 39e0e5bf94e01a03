/* Validation of a .cosmoext file before anything is mapped: file header,
   image table, digests, image header, table bounds, segments, ranges. */
#ifndef CXVALIDATE_H
#define CXVALIDATE_H
#include <stdint.h>

#include "cxloadctx.h"

#pragma GCC visibility push(hidden) /* internal to the runtime */
/* Each returns 0, or -1 with the reason in c->err. */
int cx_validate_file(struct cx_ctx *c);   /* file header and table; picks this machine's image */
int cx_verify_image(struct cx_ctx *c);    /* its CRC-32C (and SHA-256 at level 2), once read */
int cx_validate_image(struct cx_ctx *c);  /* image header, tables, segments, module name */
int cx_validate_ranges(struct cx_ctx *c); /* entry, init/fini arrays, unwind info, TLS */

/* Index of the segment holding [va, va+len), or -1. */
int cx_seg_of(struct cx_ctx *c, uint64_t va, uint64_t len);
#pragma GCC visibility pop

#endif
