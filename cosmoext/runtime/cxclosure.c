/* cxclosure: closures without code generation.  Stub i, assembled into the
   runtime's own text, reaches slot i PC-relatively, so making a closure writes
   only data and works under strict W^X (design: docs/runtime.md). */
#include "cxclosure.h"
#include "cxtls_dynamic.h"

#if defined(__APPLE__) && !(defined(__has_include) && __has_include(<unistd.h>))
#include "compat/cx_darwin.h" /* no SDK: our own declarations */
#else
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__aarch64__)
#define CX_HAVE_STUBS 1
#define CX_POOL CX_CLOSURE_POOL
#else
#define CX_HAVE_STUBS 0
#define CX_POOL 1
#endif

#define CX_NIL 0xffffffffu

struct cx_slot {
  void *handler; /* NULL while free: calling a freed closure traps */
  void *userdata;
};
_Static_assert(sizeof(struct cx_slot) == 16, "the stubs address slots as 16-byte entries");

/* Referenced by name from the assembly below. */
__attribute__((visibility("hidden"), aligned(64))) struct cx_slot cx_closure_slots[CX_POOL];
extern const char cx_closure_stubs[] __attribute__((visibility("hidden")));
void *cx_closure_enter_c(struct cx_slot *s) __attribute__((visibility("hidden"), used));

/* initial-exec (cxtls_dynamic.h): a closure call reads it with no __tls_get_addr call */
static _Thread_local void *t_userdata CX_TLS_MODEL;

static uint64_t g_head = CX_NIL; /* (generation << 32) | index of the first free slot */
static uint32_t g_next[CX_POOL];  /* next free slot after each free slot */
static uint32_t g_fresh;          /* slots [g_fresh, CX_POOL) were never handed out */
static uint8_t g_live[CX_POOL];   /* 1 while allocated (catches double frees) */
static size_t g_count, g_peak;

#define STR_(x) #x
#define STR(x) STR_(x)
#if defined(__APPLE__)
#define SYM(x) "_" #x
#define HIDDEN(x) ".private_extern _" #x "\n"
#define SECTION_BEGIN ".text\n"
#define SECTION_END ""
#else
#define SYM(x) #x
#define HIDDEN(x) ".hidden " #x "\n"
#define SECTION_BEGIN ".pushsection .text\n"
#define SECTION_END ".popsection\n"
#endif

#if defined(__x86_64__)
/* enter: r11 = &slot.  At entry rsp = 8 mod 16; 184 bytes of saves make it
   16-aligned for the call and for movaps. */
__asm__(SECTION_BEGIN
        ".p2align 12\n"
        ".globl " SYM(cx_closure_stubs) "\n" HIDDEN(cx_closure_stubs)
        SYM(cx_closure_stubs) ":\n"
        ".set cx_closure_i, 0\n"
        ".rept " STR(CX_POOL) "\n"
        "  .p2align 4\n"
        "  endbr64\n"
        "  lea " SYM(cx_closure_slots) "+16*cx_closure_i(%rip), %r11\n"
        "  jmp cx_closure_enter\n"
        "  .set cx_closure_i, cx_closure_i + 1\n"
        ".endr\n"
        ".p2align 4\n"
        "cx_closure_enter:\n"
        "  .cfi_startproc\n"
        "  sub $184, %rsp\n"
        "  .cfi_def_cfa_offset 192\n"
        "  movaps %xmm0, 0(%rsp)\n"
        "  movaps %xmm1, 16(%rsp)\n"
        "  movaps %xmm2, 32(%rsp)\n"
        "  movaps %xmm3, 48(%rsp)\n"
        "  movaps %xmm4, 64(%rsp)\n"
        "  movaps %xmm5, 80(%rsp)\n"
        "  movaps %xmm6, 96(%rsp)\n"
        "  movaps %xmm7, 112(%rsp)\n"
        "  mov %rdi, 128(%rsp)\n"
        "  mov %rsi, 136(%rsp)\n"
        "  mov %rdx, 144(%rsp)\n"
        "  mov %rcx, 152(%rsp)\n"
        "  mov %r8, 160(%rsp)\n"
        "  mov %r9, 168(%rsp)\n"
        "  mov %rax, 176(%rsp)\n" /* vector-register count of variadic calls */
        "  mov %r11, %rdi\n"
        "  call " SYM(cx_closure_enter_c) "\n"
        "  mov %rax, %r11\n"
        "  movaps 0(%rsp), %xmm0\n"
        "  movaps 16(%rsp), %xmm1\n"
        "  movaps 32(%rsp), %xmm2\n"
        "  movaps 48(%rsp), %xmm3\n"
        "  movaps 64(%rsp), %xmm4\n"
        "  movaps 80(%rsp), %xmm5\n"
        "  movaps 96(%rsp), %xmm6\n"
        "  movaps 112(%rsp), %xmm7\n"
        "  mov 128(%rsp), %rdi\n"
        "  mov 136(%rsp), %rsi\n"
        "  mov 144(%rsp), %rdx\n"
        "  mov 152(%rsp), %rcx\n"
        "  mov 160(%rsp), %r8\n"
        "  mov 168(%rsp), %r9\n"
        "  mov 176(%rsp), %rax\n"
        "  add $184, %rsp\n"
        "  .cfi_def_cfa_offset 8\n"
        "  jmp *%r11\n"
        "  .cfi_endproc\n"
        SECTION_END);
#elif defined(__aarch64__)
#if defined(__APPLE__)
#define SLOT_PAGE SYM(cx_closure_slots) "@PAGE+16*cx_closure_i"
#define SLOT_LO12 SYM(cx_closure_slots) "@PAGEOFF+16*cx_closure_i"
#else
#define SLOT_PAGE SYM(cx_closure_slots) "+16*cx_closure_i"
#define SLOT_LO12 ":lo12:" SYM(cx_closure_slots) "+16*cx_closure_i"
#endif
/* enter: x16 = &slot.  Saves x0-x8 (x8: indirect result) and q0-q7 in a
   224-byte frame with the frame record at its base. */
__asm__(SECTION_BEGIN
        ".p2align 14\n"
        ".globl " SYM(cx_closure_stubs) "\n" HIDDEN(cx_closure_stubs)
        SYM(cx_closure_stubs) ":\n"
        ".set cx_closure_i, 0\n"
        ".rept " STR(CX_POOL) "\n"
        "  hint #34\n" /* bti c */
        "  adrp x16, " SLOT_PAGE "\n"
        "  add x16, x16, " SLOT_LO12 "\n"
        "  b cx_closure_enter\n"
        "  .set cx_closure_i, cx_closure_i + 1\n"
        ".endr\n"
        "cx_closure_enter:\n"
        "  .cfi_startproc\n"
        "  stp x29, x30, [sp, #-224]!\n"
        "  .cfi_def_cfa_offset 224\n"
        "  .cfi_offset x29, -224\n"
        "  .cfi_offset x30, -216\n"
        "  mov x29, sp\n"
        "  stp x0, x1, [sp, #16]\n"
        "  stp x2, x3, [sp, #32]\n"
        "  stp x4, x5, [sp, #48]\n"
        "  stp x6, x7, [sp, #64]\n"
        "  str x8, [sp, #80]\n"
        "  stp q0, q1, [sp, #96]\n"
        "  stp q2, q3, [sp, #128]\n"
        "  stp q4, q5, [sp, #160]\n"
        "  stp q6, q7, [sp, #192]\n"
        "  mov x0, x16\n"
        "  bl " SYM(cx_closure_enter_c) "\n"
        "  mov x16, x0\n"
        "  ldp q0, q1, [sp, #96]\n"
        "  ldp q2, q3, [sp, #128]\n"
        "  ldp q4, q5, [sp, #160]\n"
        "  ldp q6, q7, [sp, #192]\n"
        "  ldp x0, x1, [sp, #16]\n"
        "  ldp x2, x3, [sp, #32]\n"
        "  ldp x4, x5, [sp, #48]\n"
        "  ldp x6, x7, [sp, #64]\n"
        "  ldr x8, [sp, #80]\n"
        "  ldp x29, x30, [sp], #224\n"
        "  .cfi_def_cfa_offset 0\n"
        "  br x16\n"
        "  .cfi_endproc\n"
        SECTION_END);
#else
const char cx_closure_stubs[1];
#endif

static void trap(const char *msg) {
  (void)!write(2, msg, strlen(msg));
  abort();
}

void *cx_closure_enter_c(struct cx_slot *s) {
  void *h = __atomic_load_n(&s->handler, __ATOMIC_ACQUIRE);
  if (!h) trap("cosmoext: a closure was called after cosmoext_closure_free(); aborting\n");
  t_userdata = __atomic_load_n(&s->userdata, __ATOMIC_RELAXED);
  return h;
}

void *cosmoext_closure_userdata(void) { return t_userdata; }

static uint32_t pop(void) {
  uint64_t h = __atomic_load_n(&g_head, __ATOMIC_ACQUIRE);
  while ((uint32_t)h != CX_NIL) {
    uint32_t i = (uint32_t)h;
    uint64_t nh = (((h >> 32) + 1) << 32) | __atomic_load_n(&g_next[i], __ATOMIC_RELAXED);
    if (__atomic_compare_exchange_n(&g_head, &h, nh, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      return i;
  }
  uint32_t f = __atomic_load_n(&g_fresh, __ATOMIC_RELAXED);
  while (f < (CX_HAVE_STUBS ? CX_POOL : 0))
    if (__atomic_compare_exchange_n(&g_fresh, &f, f + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      return f;
  return CX_NIL;
}

static void push(uint32_t i) {
  uint64_t h = __atomic_load_n(&g_head, __ATOMIC_RELAXED), nh;
  do {
    __atomic_store_n(&g_next[i], (uint32_t)h, __ATOMIC_RELAXED);
    nh = (((h >> 32) + 1) << 32) | i;
  } while (!__atomic_compare_exchange_n(&g_head, &h, nh, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void *cosmoext_closure_new(void *handler, void *userdata) {
  if (!handler) return NULL;
  uint32_t i = pop();
  if (i == CX_NIL) return NULL;
  __atomic_store_n(&g_live[i], 1, __ATOMIC_RELAXED);
  __atomic_store_n(&cx_closure_slots[i].userdata, userdata, __ATOMIC_RELAXED);
  __atomic_store_n(&cx_closure_slots[i].handler, handler, __ATOMIC_RELEASE);
  size_t n = __atomic_add_fetch(&g_count, 1, __ATOMIC_RELAXED);
  size_t peak = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
  while (n > peak &&
         !__atomic_compare_exchange_n(&g_peak, &peak, n, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return (void *)(cx_closure_stubs + (size_t)i * CX_CLOSURE_STUB_SIZE);
}

void cosmoext_closure_free(void *fn) {
  uintptr_t p = (uintptr_t)fn, b = (uintptr_t)cx_closure_stubs;
  if (!CX_HAVE_STUBS || p < b || p - b >= (uintptr_t)CX_POOL * CX_CLOSURE_STUB_SIZE ||
      (p - b) % CX_CLOSURE_STUB_SIZE)
    return;
  uint32_t i = (uint32_t)((p - b) / CX_CLOSURE_STUB_SIZE);
  uint8_t one = 1;
  if (!__atomic_compare_exchange_n(&g_live[i], &one, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
    return; /* not allocated: a double free, or never handed out */
  __atomic_store_n(&cx_closure_slots[i].handler, NULL, __ATOMIC_RELEASE);
  __atomic_sub_fetch(&g_count, 1, __ATOMIC_RELAXED);
  push(i);
}

void cx_closure_info(struct cx_closure_info *info) {
  info->capacity = CX_HAVE_STUBS ? CX_POOL : 0;
  info->live = __atomic_load_n(&g_count, __ATOMIC_RELAXED);
  info->peak = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
  info->stub_size = CX_CLOSURE_STUB_SIZE;
  info->stubs = (uintptr_t)cx_closure_stubs;
  info->slots = (uintptr_t)cx_closure_slots;
  info->slot_size = sizeof(struct cx_slot);
#if defined(__x86_64__)
  info->arch = "x86_64";
#elif defined(__aarch64__)
  info->arch = "aarch64";
#else
  info->arch = "none";
#endif
}
