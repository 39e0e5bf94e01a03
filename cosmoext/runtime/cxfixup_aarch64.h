/* aarch64 instruction fixups (kinds 16..28 and their CX_FX_A64_CHECK forms). */
#ifndef CXFIXUP_AARCH64_H
#define CXFIXUP_AARCH64_H
#include <stdint.h>

#include "cxformat.h"
#include "cxloadctx.h"

#pragma GCC visibility push(hidden) /* internal to the runtime */
/* Bytes a kind writes (4, or 16 for a TLS descriptor); 0: not an aarch64 kind. */
unsigned cx_a64_fixup_width(uint32_t kind);
/* Kinds that may take S = T (CX_SYM_TP, local-exec TLS). */
int cx_a64_fixup_takes_tp(uint32_t kind);
/* Fixup i at p: V = S + A, P = p.  Returns 0, or -1 with the reason in c->err. */
int cx_a64_apply_fixup(struct cx_ctx *c, uint32_t i, const struct cx_fixup *f, unsigned char *p,
                       uint64_t S, uint64_t P);
#pragma GCC visibility pop

#endif
