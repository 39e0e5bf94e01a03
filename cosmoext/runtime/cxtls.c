/* Dynamic TLS for images: the loader's own __tls_get_addr.

   -fPIC objects reach thread-locals through a GOT pair {module, offset} and
   a call to __tls_get_addr; images import that name from the export table,
   which points here.  Each thread gets one block per module, allocated on
   first use and freed at thread exit by a pthread key destructor (glibc
   runs C++ thread_local destructors before key destructors). */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cxload.h"

#define CX_MAX_TLS_MODULES 1024

struct tls_module {
  const void *tmpl;
  size_t filesz, memsz, align;
  int live;
};

struct tls_index {
  unsigned long module, offset;
};

struct dtv {
  size_t n;
  void *block[];
};

static struct tls_module g_mods[CX_MAX_TLS_MODULES + 1];
static size_t g_nmods; /* published with release ordering */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* The calling thread's blocks.  Not static: the aarch64 TLS descriptor
   resolver below reads it from assembly. */
__attribute__((visibility("hidden"))) __thread struct dtv *cx_tls_dtv;

struct cx_tls_reserve *cx_static_tls;

#ifdef CX_STATIC_TLS_RESERVE
/* The interpreter's static TLS reserve (embedded builds only).  It lives in
   the executable's own TLS segment, so it sits at one fixed offset from the
   thread pointer in every thread, old and new: non-PIC images' local-exec and
   initial-exec TLS is carved out of it.  It is initialised data (.tdata),
   starting with a signature, so that its bytes exist in the executable's TLS
   template: initialised image TLS is written there for threads created
   later, and into the calling thread's block for itself. */
#define CX_RESERVE_SIG "cosmoext static TLS reserve v1"
#define CX_RESERVE_SKIP 64 /* the signature's bytes are never handed out */
static __thread unsigned char cx_tls_reserve_area[CX_STATIC_TLS_RESERVE]
    __attribute__((aligned(64))) = CX_RESERVE_SIG;
static struct cx_tls_reserve g_reserve;
static unsigned char *g_template; /* the reserve inside the TLS template */
static uintptr_t g_relro_lo, g_relro_hi;

static char *thread_pointer(void) {
  char *tp;
#if defined(__x86_64__)
  __asm__("mov %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
  __asm__("mrs %0, tpidr_el0" : "=r"(tp));
#else
#error "no thread pointer on this architecture"
#endif
  return tp;
}

static int find_template(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t at = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_GNU_RELRO) {
      g_relro_lo = at;
      g_relro_hi = at + ph->p_memsz;
    }
    if (ph->p_type != PT_TLS || g_template) continue;
    unsigned char *t = memmem((void *)at, ph->p_filesz, CX_RESERVE_SIG, sizeof CX_RESERVE_SIG);
    if (t && (size_t)((unsigned char *)at + ph->p_filesz - t) >= CX_STATIC_TLS_RESERVE)
      g_template = t;
  }
  return 1; /* the executable is reported first */
}

/* Threads of this process besides the caller, as /proc/self/task lists
   them, minus those that already ran when the runtime started: under
   qemu-user, /proc/self/task is the host's view and includes qemu's own
   threads, which have no guest TLS.  (A static interpreter starts no thread
   of its own before main.) */
static long g_threads_at_start;

static long count_threads(void) {
  DIR *d = opendir("/proc/self/task");
  long n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static long other_threads(void) {
  long n = count_threads();
  return n < 0 ? -1 : n - 1 > g_threads_at_start ? n - 1 - g_threads_at_start : 0;
}

void cx_static_tls_init(void) {
  if (cx_static_tls) return;
  g_reserve.tpoff = (intptr_t)((char *)cx_tls_reserve_area - thread_pointer());
  g_reserve.size = sizeof cx_tls_reserve_area;
  g_reserve.used = CX_RESERVE_SKIP;
  long n = count_threads();
  g_threads_at_start = n > 1 ? n - 1 : 0;
  dl_iterate_phdr(find_template, NULL);
  cx_static_tls = &g_reserve;
}

int cx_static_tls_can_seed(char *err, size_t errlen) {
  long others = other_threads();
  if (!g_template) {
    snprintf(err, errlen, "image has initialised static thread-local data (.tdata) but this "
             "interpreter's TLS template was not found; rebuild with --pic");
    return -1;
  }
  if (others != 0) {
    snprintf(err, errlen, "image has initialised static thread-local data (.tdata), which can "
             "only be set up while the interpreter runs one thread (%ld others%s); import it "
             "before starting threads, or rebuild with --pic", others < 0 ? 0 : others,
             others < 0 ? ": thread count unknown" : "");
    return -1;
  }
  return 0;
}

/* Copy an image's initialised TLS into the calling thread's block and into
   the template every later thread starts from. */
int cx_static_tls_seed(size_t off, const void *data, size_t n, char *err, size_t errlen) {
  uintptr_t t = (uintptr_t)(g_template + off);
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t lo = t & ~(pg - 1), hi = (t + n + pg - 1) & ~(pg - 1);
  int relro = t < g_relro_hi && t + n > g_relro_lo;
  if (relro && mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) != 0) {
    snprintf(err, errlen, "cannot write the TLS template: %s", strerror(errno));
    return -1;
  }
  memcpy((void *)t, data, n);
  if (relro) mprotect((void *)lo, hi - lo, PROT_READ);
  memcpy(cx_tls_reserve_area + off, data, n);
  return 0;
}
#else
void cx_static_tls_init(void) {}
int cx_static_tls_can_seed(char *err, size_t errlen) {
  snprintf(err, errlen, "no static TLS reserve");
  return -1;
}
int cx_static_tls_seed(size_t off, const void *data, size_t n, char *err, size_t errlen) {
  (void)off; (void)data; (void)n;
  return cx_static_tls_can_seed(err, errlen);
}
#endif

static void free_dtv(void *p) {
  struct dtv *d = p;
  for (size_t i = 0; i < d->n; i++) free(d->block[i]);
  free(d);
  cx_tls_dtv = NULL;
}

static void make_key(void) { pthread_key_create(&g_key, free_dtv); }

size_t cx_tls_register(const void *tmpl, size_t filesz, size_t memsz, size_t align) {
  pthread_once(&g_once, make_key);
  size_t n = __atomic_load_n(&g_nmods, __ATOMIC_ACQUIRE);
  if (n >= CX_MAX_TLS_MODULES) return 0;
  struct tls_module *m = &g_mods[n + 1];
  m->tmpl = tmpl;
  m->filesz = filesz;
  m->memsz = memsz;
  m->align = align < sizeof(void *) ? sizeof(void *) : align;
  m->live = 1;
  __atomic_store_n(&g_nmods, n + 1, __ATOMIC_RELEASE);
  return n + 1;
}

void cx_tls_unregister(size_t module) {
  if (module && module <= CX_MAX_TLS_MODULES) g_mods[module].live = 0;
}

static void *slow_path(size_t mod) {
  size_t n = __atomic_load_n(&g_nmods, __ATOMIC_ACQUIRE);
  struct dtv *d = cx_tls_dtv;
  if (mod == 0 || mod > n || !g_mods[mod].live) abort(); /* corrupt GOT: nothing sane to return */
  if (!d || d->n < n) {
    size_t old = d ? d->n : 0;
    struct dtv *nd = realloc(d, sizeof *nd + n * sizeof(void *));
    if (!nd) abort();
    memset(nd->block + old, 0, (n - old) * sizeof(void *));
    nd->n = n;
    if (!d) pthread_setspecific(g_key, nd);
    else if (nd != d) pthread_setspecific(g_key, nd);
    cx_tls_dtv = d = nd;
  }
  struct tls_module *m = &g_mods[mod];
  void *b = NULL;
  if (posix_memalign(&b, m->align, m->memsz ? m->memsz : 1) != 0) abort();
  memcpy(b, m->tmpl, m->filesz);
  memset((char *)b + m->filesz, 0, m->memsz - m->filesz);
  d->block[mod - 1] = b;
  return b;
}

void *cx_tls_get_addr(void *arg) {
  const struct tls_index *ti = arg;
  struct dtv *d = cx_tls_dtv;
  size_t mod = (size_t)ti->module;
  void *b;
  if (__builtin_expect(d && mod - 1 < d->n && (b = d->block[mod - 1]) != NULL, 1))
    return (char *)b + ti->offset;
  return (char *)slow_path(mod) + ti->offset;
}

#if defined(__aarch64__)
/* TLS descriptors (aarch64 -fPIC code, libstdc++): image code calls
   desc->resolver with x0 = desc and adds the result to the thread pointer.
   The resolver may change only x0 (and the flags): everything else,
   including all of v0-v31, is preserved.  x18 and x28 are never touched
   (cosmocc reserves them).

   cx_tlsdesc_static: the argument is the offset itself (an image in the
   static TLS reserve).  cx_tlsdesc_dynamic: the argument is module << 48 |
   offset; the fast path reads this thread's block from cx_tls_dtv, the slow
   path saves every caller-saved register and calls cx_tlsdesc_slow. */
__attribute__((visibility("hidden"))) intptr_t cx_tlsdesc_slow(uint64_t arg);
intptr_t cx_tlsdesc_slow(uint64_t arg) {
  struct tls_index ti = {(unsigned long)(arg >> 48), (unsigned long)(arg & 0xffffffffffffull)};
  return (char *)cx_tls_get_addr(&ti) - (char *)__builtin_thread_pointer();
}

#if defined(__linux__) && !defined(__COSMOPOLITAN__)
#define CX_TLSDESC_FAST_PATH                                                        \
  "  adrp x0, :tlsdesc:cx_tls_dtv\n"                                                \
  "  ldr x2, [x0, #:tlsdesc_lo12:cx_tls_dtv]\n"                                     \
  "  add x0, x0, #:tlsdesc_lo12:cx_tls_dtv\n"                                       \
  "  .tlsdesccall cx_tls_dtv\n"                                                     \
  "  blr x2\n"                      /* x0 = offset of cx_tls_dtv */                 \
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
