/* Static TLS: the reserve embedded interpreters keep for non-PIC images. */
#ifndef CXTLS_STATIC_H
#define CXTLS_STATIC_H
#include <stddef.h>
#include <stdint.h>

struct cx_ctx; /* cxloadctx.h */

struct cx_tls_reserve {
  intptr_t tpoff; /* reserve start minus the thread pointer */
  size_t size, used; /* from the reserve's start */
};
/* NULL unless the interpreter has a reserve (built with CX_STATIC_TLS_RESERVE). */
extern struct cx_tls_reserve *cx_static_tls;

void cx_static_tls_init(void); /* sets cx_static_tls; a no-op without a reserve */
/* 0 if image .tdata can be written now (template found, no other thread). */
int cx_static_tls_can_seed(char *err, size_t errlen);
/* Write image .tdata at off into this thread's block and the TLS template. */
int cx_static_tls_seed(size_t off, const void *data, size_t n, char *err, size_t errlen);
/* Carve the image's block out of the reserve (if req has CX_F_STATIC_TLS):
   sets c->tls_tpoff, c->tls_start, c->tls_used_before. */
int cx_static_tls_place(struct cx_ctx *c, uint32_t req) __attribute__((visibility("hidden")));

#endif
