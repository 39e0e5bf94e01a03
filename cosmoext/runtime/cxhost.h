/* What this interpreter gives cx_load as struct cx_host (besides its target
   and ABI strings, which module.c knows): name resolution and the unwinder. */
#ifndef CXHOST_H
#define CXHOST_H
#include <stdint.h>

#pragma GCC visibility push(hidden) /* internal to the runtime */
/* An import's address: the runtime's own names (unwinder, __tls_get_addr,
   dl*, closures) ahead of the export table; NULL if absent. */
const void *cx_resolve(const char *name, uint32_t hash);
/* Register an image's .eh_frame with the interpreter's unwinder. */
void cx_register_frames(const void *eh_frame);
/* The shared C++ runtime (host runtime only): libstdc++.so.6's own
   definition of NAME (GNU hash HASH), opening it on first use; NULL if
   absent. */
#if CX_EXPORTS_LAZY && !defined(__COSMOPOLITAN__)
const void *cx_resolve_cxx(const char *name, uint32_t hash);
#define CX_RESOLVE_CXX cx_resolve_cxx
#else
#define CX_RESOLVE_CXX NULL
#endif
#pragma GCC visibility pop

#endif
