/* Placement and mapping of an image (after validation, before fixups). */
#ifndef CXPLACE_H
#define CXPLACE_H
#include <stdint.h>

#include "cxloadctx.h"

#pragma GCC visibility push(hidden) /* internal to the runtime */
/* Each returns 0, or -1 with the reason in c->err. */
int cx_reserve(struct cx_ctx *c, uint32_t req); /* sets c->base: near host / low 4 GiB per req */
int cx_map_segments(struct cx_ctx *c);     /* writable first where fixups or a tail need it */
int cx_protect_segments(struct cx_ctx *c); /* final protections (RX / R); RW data stays RW */
void cx_unmap_all(struct cx_ctx *c);       /* after a failure: the whole reservation */
#pragma GCC visibility pop

#endif
