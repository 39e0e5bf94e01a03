/* Exercises the x86_64 and aarch64 relocation types the linker must handle.
   Built in several code models by tests/test_relocs.py and
   tests/test_aarch64.py; every function checks its
   own result so a wrong relocation shows up as a wrong answer. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

int cx_counter = 40;                 /* global data */
static const char *const words[] = {"alpha", "beta", "gamma"}; /* pointers to rodata */
static long add(long a, long b) { return a + b; }
static long mul(long a, long b) { return a * b; }
long (*const ops[])(long, long) = {add, mul}; /* function pointers in relro */
__thread long tls_global = 5;        /* initialised TLS, visible */
static __thread long tls_local;      /* zero TLS, local */
__thread long tls_other;             /* zero TLS, visible */

#if defined(__x86_64__)
/* PC64: a 64-bit self-relative offset in data. */
__asm__(".pushsection .data.rel.ro.cx_pc64,\"aw\"\n"
        ".balign 8\n"
        ".globl cx_pc64_slot\n"
        "cx_pc64_slot: .quad cx_counter - .\n"
        ".popsection\n");
extern const int64_t cx_pc64_slot;
/* GOTPC32 + GOTOFF64: GOT base, then a GOT-relative offset to a symbol. */
__asm__(".text\n"
        ".globl cx_gotoff_addr\n"
        ".type cx_gotoff_addr,@function\n"
        "cx_gotoff_addr:\n"
        "  leaq _GLOBAL_OFFSET_TABLE_(%rip), %rax\n"
        "  movabsq $cx_counter@GOTOFF, %rdx\n"
        "  addq %rdx, %rax\n"
        "  ret\n");
void *cx_gotoff_addr(void);
/* DTPOFF64: module-relative offsets of two TLS variables. */
__asm__(".pushsection .rodata.cx_dtpoff,\"a\"\n"
        ".balign 8\n"
        ".globl cx_dtpoff64\n"
        "cx_dtpoff64: .quad tls_global@dtpoff, tls_other@dtpoff\n"
        ".popsection\n");
extern const int64_t cx_dtpoff64[2];
#endif

#if defined(__aarch64__)
/* AArch64 types GCC does not emit for this file by itself: loads of every
   width through ADRP + :lo12:, ADR, conditional and test branches across
   sections, BL to an import and to internal code, LDR literals (data and a
   GOT slot), local-dynamic TLS through a descriptor, MOVZ/MOVK address
   sequences (against this image and against absolute symbols, which
   cx_reloc_a64abs.s defines), PREL64/ABS32/ABS16 data and, without -fPIC,
   local-exec TLS through MOVW and load/store forms; and a TLS descriptor
   call that must leave every register but x0 as it was. */
__asm__(".pushsection .rodata.cx_a64_data,\"a\"\n"
        ".balign 32\n"
        ".globl cx_a64_data\n"
        "cx_a64_data: .byte 7, 0\n"
        "  .hword 300\n"
        "  .word 70000\n"
        "  .xword 0x1122334455667788\n"
        "  .xword 1, 2\n"
        "cx_a64_str: .asciz \"abcd\"\n"
        ".popsection\n"
        ".pushsection .data.rel.ro.cx_a64_ptrs,\"aw\"\n"
        ".balign 8\n"
        ".globl cx_a64_prel64\n"
        "cx_a64_prel64: .xword cx_counter - .\n"
        ".globl cx_a64_abs32\n"
        "cx_a64_abs32: .word cx_counter\n"
        ".globl cx_a64_abs16\n"
        "cx_a64_abs16: .hword cx_abs_small\n"
        ".popsection\n"
        /* targets in a section of their own: the branches to them stay relocations */
        ".pushsection .text.cx_a64_far,\"ax\",%progbits\n"
        ".globl cx_a64_target\n"
        ".type cx_a64_target,%function\n"
        "cx_a64_target: add x0, x0, #1\n"
        "  ret\n"
        "cx_a64_t19: add x0, x0, #10\n"
        "  b cx_a64_back19\n"
        "cx_a64_t14: add x0, x0, #100\n"
        "  b cx_a64_back14\n"
        ".balign 8\n"
        "cx_a64_lit: .xword 0x5566\n"
        ".popsection\n"
        ".pushsection .text.cx_a64_code,\"ax\",%progbits\n"
        /* void cx_a64_loads(long out[8]) */
        ".globl cx_a64_loads\n"
        ".type cx_a64_loads,%function\n"
        "cx_a64_loads:\n"
        "  adrp x1, cx_a64_data\n"
        "  add x1, x1, :lo12:cx_a64_data\n"
        "  str x1, [x0]\n"
        "  adrp x2, :pg_hi21_nc:cx_a64_data\n"
        "  ldrb w3, [x2, :lo12:cx_a64_data]\n"
        "  str x3, [x0, #8]\n"
        "  ldrh w3, [x2, :lo12:cx_a64_data+2]\n"
        "  str x3, [x0, #16]\n"
        "  ldr w3, [x2, :lo12:cx_a64_data+4]\n"
        "  str x3, [x0, #24]\n"
        "  ldr x3, [x2, :lo12:cx_a64_data+8]\n"
        "  str x3, [x0, #32]\n"
        "  ldr q0, [x2, :lo12:cx_a64_data+16]\n"
        "  str q0, [x0, #40]\n"
        "  adr x3, cx_a64_target\n"
        "  str x3, [x0, #56]\n"
        "  ret\n"
        /* long cx_a64_branches(long x): x + 111 for x >= 0 */
        ".globl cx_a64_branches\n"
        ".type cx_a64_branches,%function\n"
        "cx_a64_branches:\n"
        "  stp x29, x30, [sp, #-16]!\n"
        "  mov x29, sp\n"
        "  bl cx_a64_target\n"
        "  cbnz x0, cx_a64_t19\n"
        "cx_a64_back19:\n"
        "  tbz x0, #63, cx_a64_t14\n"
        "cx_a64_back14:\n"
        "  ldp x29, x30, [sp], #16\n"
        "  ret\n"
        /* long cx_a64_strlen(void): strlen("abcd") through the PLT */
        ".globl cx_a64_strlen\n"
        ".type cx_a64_strlen,%function\n"
        "cx_a64_strlen:\n"
        "  stp x29, x30, [sp, #-16]!\n"
        "  mov x29, sp\n"
        "  adrp x0, cx_a64_str\n"
        "  add x0, x0, :lo12:cx_a64_str\n"
        "  bl strlen\n"
        "  ldp x29, x30, [sp], #16\n"
        "  ret\n"
        /* void cx_a64_literals(long out[3]): a literal, a GOT slot by LDR
           literal, and a signed absolute MOVW (MOVN for cx_abs_neg = -2) */
        ".globl cx_a64_literals\n"
        ".type cx_a64_literals,%function\n"
        "cx_a64_literals:\n"
        "  ldr x1, cx_a64_lit\n"
        "  str x1, [x0]\n"
        "  ldr x1, :got:cx_counter\n"
        "  str x1, [x0, #8]\n"
        "  movz x1, #:abs_g0_s:cx_abs_neg\n"
        "  str x1, [x0, #16]\n"
        "  ret\n"
        /* local-dynamic TLS through a descriptor for the module's block:
           the address of tls_other */
        ".globl cx_a64_tls_ld\n"
        ".type cx_a64_tls_ld,%function\n"
        "cx_a64_tls_ld:\n"
        "  stp x29, x30, [sp, #-16]!\n"
        "  mov x29, sp\n"
        "  adrp x0, :tlsdesc:_TLS_MODULE_BASE_\n"
        "  ldr x1, [x0, :tlsdesc_lo12:_TLS_MODULE_BASE_]\n"
        "  add x0, x0, :tlsdesc_lo12:_TLS_MODULE_BASE_\n"
        "  .tlsdesccall _TLS_MODULE_BASE_\n"
        "  blr x1\n"
        "  add x0, x0, #:dtprel_hi12:tls_other, lsl #12\n"
        "  add x0, x0, #:dtprel_lo12_nc:tls_other\n"
        "  mrs x1, tpidr_el0\n"
        "  add x0, x0, x1\n"
        "  ldp x29, x30, [sp], #16\n"
        "  ret\n"
        /* void cx_a64_tlsdesc_regs(uint64_t before[80], uint64_t after[81]):
           x2-x17 and all of v0-v31 around a TLS descriptor call for tls_other
           (the resolver may change x0 only); after[80] = its result */
        ".globl cx_a64_tlsdesc_regs\n"
        ".type cx_a64_tlsdesc_regs,%function\n"
        "cx_a64_tlsdesc_regs:\n"
        "  stp x29, x30, [sp, #-96]!\n"
        "  mov x29, sp\n"
        "  stp x19, x20, [sp, #16]\n"
        "  stp d8, d9, [sp, #32]\n"
        "  stp d10, d11, [sp, #48]\n"
        "  stp d12, d13, [sp, #64]\n"
        "  stp d14, d15, [sp, #80]\n"
        "  mov x19, x0\n"
        "  mov x20, x1\n"
        "  mov x2, #258\n"
        "  mov x3, #259\n"
        "  mov x4, #260\n"
        "  mov x5, #261\n"
        "  mov x6, #262\n"
        "  mov x7, #263\n"
        "  mov x8, #264\n"
        "  mov x9, #265\n"
        "  mov x10, #266\n"
        "  mov x11, #267\n"
        "  mov x12, #268\n"
        "  mov x13, #269\n"
        "  mov x14, #270\n"
        "  mov x15, #271\n"
        "  mov x16, #272\n"
        "  mov x17, #273\n"
        "  movi v0.16b, #64\n"
        "  movi v1.16b, #65\n"
        "  movi v2.16b, #66\n"
        "  movi v3.16b, #67\n"
        "  movi v4.16b, #68\n"
        "  movi v5.16b, #69\n"
        "  movi v6.16b, #70\n"
        "  movi v7.16b, #71\n"
        "  movi v8.16b, #72\n"
        "  movi v9.16b, #73\n"
        "  movi v10.16b, #74\n"
        "  movi v11.16b, #75\n"
        "  movi v12.16b, #76\n"
        "  movi v13.16b, #77\n"
        "  movi v14.16b, #78\n"
        "  movi v15.16b, #79\n"
        "  movi v16.16b, #80\n"
        "  movi v17.16b, #81\n"
        "  movi v18.16b, #82\n"
        "  movi v19.16b, #83\n"
        "  movi v20.16b, #84\n"
        "  movi v21.16b, #85\n"
        "  movi v22.16b, #86\n"
        "  movi v23.16b, #87\n"
        "  movi v24.16b, #88\n"
        "  movi v25.16b, #89\n"
        "  movi v26.16b, #90\n"
        "  movi v27.16b, #91\n"
        "  movi v28.16b, #92\n"
        "  movi v29.16b, #93\n"
        "  movi v30.16b, #94\n"
        "  movi v31.16b, #95\n"
        "  stp x2, x3, [x19, #0]\n"
        "  stp x4, x5, [x19, #16]\n"
        "  stp x6, x7, [x19, #32]\n"
        "  stp x8, x9, [x19, #48]\n"
        "  stp x10, x11, [x19, #64]\n"
        "  stp x12, x13, [x19, #80]\n"
        "  stp x14, x15, [x19, #96]\n"
        "  stp x16, x17, [x19, #112]\n"
        "  stp q0, q1, [x19, #128]\n"
        "  stp q2, q3, [x19, #160]\n"
        "  stp q4, q5, [x19, #192]\n"
        "  stp q6, q7, [x19, #224]\n"
        "  stp q8, q9, [x19, #256]\n"
        "  stp q10, q11, [x19, #288]\n"
        "  stp q12, q13, [x19, #320]\n"
        "  stp q14, q15, [x19, #352]\n"
        "  stp q16, q17, [x19, #384]\n"
        "  stp q18, q19, [x19, #416]\n"
        "  stp q20, q21, [x19, #448]\n"
        "  stp q22, q23, [x19, #480]\n"
        "  stp q24, q25, [x19, #512]\n"
        "  stp q26, q27, [x19, #544]\n"
        "  stp q28, q29, [x19, #576]\n"
        "  stp q30, q31, [x19, #608]\n"
        "  adrp x0, :tlsdesc:tls_other\n"
        "  ldr x1, [x0, :tlsdesc_lo12:tls_other]\n"
        "  add x0, x0, :tlsdesc_lo12:tls_other\n"
        "  .tlsdesccall tls_other\n"
        "  blr x1\n"
        "  stp x2, x3, [x20, #0]\n"
        "  stp x4, x5, [x20, #16]\n"
        "  stp x6, x7, [x20, #32]\n"
        "  stp x8, x9, [x20, #48]\n"
        "  stp x10, x11, [x20, #64]\n"
        "  stp x12, x13, [x20, #80]\n"
        "  stp x14, x15, [x20, #96]\n"
        "  stp x16, x17, [x20, #112]\n"
        "  stp q0, q1, [x20, #128]\n"
        "  stp q2, q3, [x20, #160]\n"
        "  stp q4, q5, [x20, #192]\n"
        "  stp q6, q7, [x20, #224]\n"
        "  stp q8, q9, [x20, #256]\n"
        "  stp q10, q11, [x20, #288]\n"
        "  stp q12, q13, [x20, #320]\n"
        "  stp q14, q15, [x20, #352]\n"
        "  stp q16, q17, [x20, #384]\n"
        "  stp q18, q19, [x20, #416]\n"
        "  stp q20, q21, [x20, #448]\n"
        "  stp q22, q23, [x20, #480]\n"
        "  stp q24, q25, [x20, #512]\n"
        "  stp q26, q27, [x20, #544]\n"
        "  stp q28, q29, [x20, #576]\n"
        "  stp q30, q31, [x20, #608]\n"
        "  str x0, [x20, #640]\n"
        "  ldp d14, d15, [sp, #80]\n"
        "  ldp d12, d13, [sp, #64]\n"
        "  ldp d10, d11, [sp, #48]\n"
        "  ldp d8, d9, [sp, #32]\n"
        "  ldp x19, x20, [sp, #16]\n"
        "  ldp x29, x30, [sp], #96\n"
        "  ret\n"
        /* the address of cx_counter, 64 bits and (checked) 32 bits */
        ".globl cx_a64_movw\n"
        ".type cx_a64_movw,%function\n"
        "cx_a64_movw:\n"
        "  movz x0, #:abs_g3:cx_counter\n"
        "  movk x0, #:abs_g2_nc:cx_counter\n"
        "  movk x0, #:abs_g1_nc:cx_counter\n"
        "  movk x0, #:abs_g0_nc:cx_counter\n"
        "  ret\n"
        ".globl cx_a64_movw_low\n"
        ".type cx_a64_movw_low,%function\n"
        "cx_a64_movw_low:\n"
        "  movz x0, #:abs_g1:cx_counter\n"
        "  movk x0, #:abs_g0_nc:cx_counter\n"
        "  ret\n"
        /* absolute symbols through the checked forms: 0x1234 + 0x123456789abc */
        ".globl cx_a64_movw_abs\n"
        ".type cx_a64_movw_abs,%function\n"
        "cx_a64_movw_abs:\n"
        "  movz x0, #:abs_g0:cx_abs_small\n"
        "  movz x1, #:abs_g2:cx_abs_big\n"
        "  movk x1, #:abs_g1_nc:cx_abs_big\n"
        "  movk x1, #:abs_g0_nc:cx_abs_big\n"
        "  add x0, x0, x1\n"
        "  ret\n"
#if !defined(__PIC__)
        /* local-exec TLS: the address of tls_other, and its value */
        ".globl cx_a64_tls_movw\n"
        ".type cx_a64_tls_movw,%function\n"
        "cx_a64_tls_movw:\n"
        "  movz x0, #:tprel_g2:tls_other\n"
        "  movk x0, #:tprel_g1_nc:tls_other\n"
        "  movk x0, #:tprel_g0_nc:tls_other\n"
        "  mrs x1, tpidr_el0\n"
        "  add x0, x0, x1\n"
        "  ret\n"
        ".globl cx_a64_tls_ldst\n"
        ".type cx_a64_tls_ldst,%function\n"
        "cx_a64_tls_ldst:\n"
        "  mrs x1, tpidr_el0\n"
        "  add x1, x1, #:tprel_hi12:tls_other, lsl #12\n"
        "  ldr x0, [x1, #:tprel_lo12_nc:tls_other]\n"
        "  ret\n"
#endif
        ".popsection\n");
void cx_a64_loads(long out[8]);
void cx_a64_literals(long out[3]);
void cx_a64_tlsdesc_regs(uint64_t before[80], uint64_t after[81]);
long *cx_a64_tls_ld(void);
long cx_a64_target(long x);
long cx_a64_branches(long x);
long cx_a64_strlen(void);
unsigned long cx_a64_movw(void);
unsigned long cx_a64_movw_low(void);
unsigned long cx_a64_movw_abs(void);
long *cx_a64_tls_movw(void);
long cx_a64_tls_ldst(void);
extern const char cx_a64_data[];
extern const int64_t cx_a64_prel64;
extern const uint32_t cx_a64_abs32;
extern const uint16_t cx_a64_abs16;
#endif

static PyObject *check(PyObject *self, PyObject *noargs) {
  (void)self; (void)noargs;
#if defined(__aarch64__)
  /* first: the first call in a thread takes the resolver's slow path */
  uint64_t before[80], after[81];
  cx_a64_tlsdesc_regs(before, after);
  int regs_ok = memcmp(before, after, sizeof before) == 0 &&
                (char *)__builtin_thread_pointer() + after[80] == (char *)&tls_other;
#endif
  long tl = ++tls_local;
  tls_global += 1;
  PyObject *none = Py_None; /* host data */
  int ok = cx_counter == 40 && ops[0](2, 3) == 5 && ops[1](2, 3) == 6 &&
           words[2][0] == 'g' && none == Py_None;
#if defined(__x86_64__)
  ok = ok && (const char *)&cx_pc64_slot + cx_pc64_slot == (const char *)&cx_counter;
  ok = ok && cx_gotoff_addr() == (void *)&cx_counter;
  /* both variables sit in the same per-thread block */
  ok = ok && (char *)&tls_global - cx_dtpoff64[0] == (char *)&tls_other - cx_dtpoff64[1];
#endif
#if defined(__aarch64__)
  ok = ok && regs_ok;
  long out[8];
  cx_a64_loads(out);
  ok = ok && out[0] == (long)cx_a64_data && out[1] == 7 && out[2] == 300 && out[3] == 70000 &&
       out[4] == 0x1122334455667788 && out[5] == 1 && out[6] == 2 &&
       out[7] == (long)cx_a64_target;
  ok = ok && cx_a64_branches(0) == 111 && cx_a64_strlen() == 4;
  cx_a64_literals(out);
  ok = ok && out[0] == 0x5566 && out[1] == (long)&cx_counter && out[2] == -2;
  ok = ok && cx_a64_tls_ld() == &tls_other;
  ok = ok && cx_a64_movw() == (unsigned long)&cx_counter &&
       cx_a64_movw_low() == (unsigned long)&cx_counter &&
       cx_a64_movw_abs() == 0x1234 + 0x123456789abcul;
  ok = ok && (const char *)&cx_a64_prel64 + cx_a64_prel64 == (const char *)&cx_counter &&
       cx_a64_abs32 == (uint32_t)(uintptr_t)&cx_counter && cx_a64_abs16 == 0x1234;
#if !defined(__PIC__)
  ok = ok && cx_a64_tls_movw() == &tls_other && cx_a64_tls_ldst() == tls_other;
#endif
#endif
  return Py_BuildValue("(Oll)", ok ? Py_True : Py_False, tl, tls_global);
}

static PyMethodDef methods[] = {{"check", check, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cx_reloc", NULL, -1, methods,
                                 NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_cx_reloc(void) { return PyModule_Create(&def); }
