/* The aarch64 TLS descriptor resolvers, in assembly because they may change
   only x0 (docs/runtime.md has the contract).  Empty on other machines. */
#include "cxtlsdesc_aarch64.h"

#if defined(__aarch64__)
#include <stddef.h>
#include <stdint.h>

#include "cxtls_dynamic.h"

/* The fast path below reads struct cx_dtv at these offsets. */
_Static_assert(offsetof(struct cx_dtv, n) == 0 && offsetof(struct cx_dtv, block) == 8, "dtv");

intptr_t cx_tlsdesc_slow(uint64_t arg) {
  struct cx_tls_index ti = {(unsigned long)(arg >> 48), (unsigned long)(arg & 0xffffffffffffull)};
  return (char *)cx_tls_get_addr(&ti) - (char *)__builtin_thread_pointer();
}

#if defined(__linux__) && !defined(__COSMOPOLITAN__)
#define CX_TLSDESC_FAST_PATH                                                        \
  "  adrp x0, :gottprel:cx_tls_dtv\n" /* initial-exec (cxtls_dynamic.h) */        \
  "  ldr x0, [x0, #:gottprel_lo12:cx_tls_dtv]\n" /* x0 = offset of cx_tls_dtv */   \
  "  mrs x4, tpidr_el0\n"                                                           \
  "  ldr x2, [x4, x0]\n"            /* x2 = this thread's dtv */                    \
  "  cbz x2, 1f\n"                                                                  \
  "  lsr x3, x1, #48\n"                                                             \
  "  sub x3, x3, #1\n"              /* module - 1 */                                \
  "  ldr x0, [x2]\n"                /* dtv->n */                                    \
  "  cmp x3, x0\n"                                                                  \
  "  b.hs 1f\n"                                                                     \
  "  add x2, x2, #8\n"                                                              \
  "  ldr x2, [x2, x3, lsl #3]\n"    /* dtv->block[module - 1] */                    \
  "  cbz x2, 1f\n"                                                                  \
  "  and x1, x1, #0xffffffffffff\n"                                                 \
  "  add x0, x2, x1\n"                                                              \
  "  sub x0, x0, x4\n"                                                              \
  "  b 2f\n"
#else
#define CX_TLSDESC_FAST_PATH ""
#endif

__asm__(
    ".text\n"
    ".balign 16\n"
    ".globl cx_tlsdesc_static\n"
    ".hidden cx_tlsdesc_static\n"
    ".type cx_tlsdesc_static, %function\n"
    "cx_tlsdesc_static:\n"
    "  hint #34\n" /* bti c */
    "  ldr x0, [x0, #8]\n"
    "  ret\n"
    ".size cx_tlsdesc_static, .-cx_tlsdesc_static\n"
    ".balign 16\n"
    ".globl cx_tlsdesc_dynamic\n"
    ".hidden cx_tlsdesc_dynamic\n"
    ".type cx_tlsdesc_dynamic, %function\n"
    "cx_tlsdesc_dynamic:\n"
    "  hint #34\n"
    "  stp x29, x30, [sp, #-48]!\n"
    "  mov x29, sp\n"
    "  stp x1, x2, [sp, #16]\n"
    "  stp x3, x4, [sp, #32]\n"
    "  ldr x1, [x0, #8]\n"
    CX_TLSDESC_FAST_PATH
    "1:\n"
    "  sub sp, sp, #624\n"
    "  stp x5, x6, [sp, #0]\n"
    "  stp x7, x8, [sp, #16]\n"
    "  stp x9, x10, [sp, #32]\n"
    "  stp x11, x12, [sp, #48]\n"
    "  stp x13, x14, [sp, #64]\n"
    "  stp x15, x16, [sp, #80]\n"
    "  str x17, [sp, #96]\n"
    "  stp q0, q1, [sp, #112]\n"
    "  stp q2, q3, [sp, #144]\n"
    "  stp q4, q5, [sp, #176]\n"
    "  stp q6, q7, [sp, #208]\n"
    "  stp q8, q9, [sp, #240]\n"
    "  stp q10, q11, [sp, #272]\n"
    "  stp q12, q13, [sp, #304]\n"
    "  stp q14, q15, [sp, #336]\n"
    "  stp q16, q17, [sp, #368]\n"
    "  stp q18, q19, [sp, #400]\n"
    "  stp q20, q21, [sp, #432]\n"
    "  stp q22, q23, [sp, #464]\n"
    "  stp q24, q25, [sp, #496]\n"
    "  stp q26, q27, [sp, #528]\n"
    "  stp q28, q29, [sp, #560]\n"
    "  stp q30, q31, [sp, #592]\n"
    "  mov x0, x1\n"
    "  bl cx_tlsdesc_slow\n"
    "  ldp q30, q31, [sp, #592]\n"
    "  ldp q28, q29, [sp, #560]\n"
    "  ldp q26, q27, [sp, #528]\n"
    "  ldp q24, q25, [sp, #496]\n"
    "  ldp q22, q23, [sp, #464]\n"
    "  ldp q20, q21, [sp, #432]\n"
    "  ldp q18, q19, [sp, #400]\n"
    "  ldp q16, q17, [sp, #368]\n"
    "  ldp q14, q15, [sp, #336]\n"
    "  ldp q12, q13, [sp, #304]\n"
    "  ldp q10, q11, [sp, #272]\n"
    "  ldp q8, q9, [sp, #240]\n"
    "  ldp q6, q7, [sp, #208]\n"
    "  ldp q4, q5, [sp, #176]\n"
    "  ldp q2, q3, [sp, #144]\n"
    "  ldp q0, q1, [sp, #112]\n"
    "  ldr x17, [sp, #96]\n"
    "  ldp x15, x16, [sp, #80]\n"
    "  ldp x13, x14, [sp, #64]\n"
    "  ldp x11, x12, [sp, #48]\n"
    "  ldp x9, x10, [sp, #32]\n"
    "  ldp x7, x8, [sp, #16]\n"
    "  ldp x5, x6, [sp, #0]\n"
    "  add sp, sp, #624\n"
    "2:\n"
    "  ldp x3, x4, [sp, #32]\n"
    "  ldp x1, x2, [sp, #16]\n"
    "  ldp x29, x30, [sp], #48\n"
    "  ret\n"
    ".size cx_tlsdesc_dynamic, .-cx_tlsdesc_dynamic\n");
#endif
