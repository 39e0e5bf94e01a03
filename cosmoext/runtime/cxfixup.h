/* Fixups: validated against the tables before mapping (which also derives
   the image's placement requirements), applied once the segments are RW. */
#ifndef CXFIXUP_H
#define CXFIXUP_H
#include <stdint.h>

#include "cxformat.h"
#include "cxloadctx.h"

#pragma GCC visibility push(hidden) /* internal to the runtime */
/* Each returns 0, or -1 with the reason in c->err. */
int cx_resolve_imports(struct cx_ctx *c); /* fills c->imp_addr through c->host->resolve */
int cx_validate_fixups(struct cx_ctx *c, uint32_t *req); /* req: the CX_F_REQUIREMENTS bits */
int cx_apply_fixups(struct cx_ctx *c);

/* What a fixup refers to, for error messages. */
#pragma GCC visibility pop

#endif
