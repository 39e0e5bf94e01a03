/* aarch64 TLS descriptor resolvers (cxtlsdesc_aarch64.c).  Called with
   x0 = the descriptor; return the variable's offset from tpidr_el0. */
#ifndef CXTLSDESC_AARCH64_H
#define CXTLSDESC_AARCH64_H
#if defined(__aarch64__)
#include <stdint.h>

void cx_tlsdesc_static(void);  /* argument: the offset itself (static TLS) */
void cx_tlsdesc_dynamic(void); /* argument: module << 48 | offset in its block */
/* The dynamic resolver's slow path (C, called from the assembly). */
__attribute__((visibility("hidden"))) intptr_t cx_tlsdesc_slow(uint64_t arg);
#endif
#endif
