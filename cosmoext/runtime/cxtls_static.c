/* Static TLS: the reserve an embedded interpreter keeps in its own TLS
   segment for non-PIC images' local-exec/initial-exec TLS (docs/runtime.md). */
#define _GNU_SOURCE 1
#include "cxtls_static.h"

#include <dirent.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cxloadctx.h"

struct cx_tls_reserve *cx_static_tls;

#ifdef CX_STATIC_TLS_RESERVE
/* In the executable's TLS segment: one fixed offset from the thread pointer
   in every thread.  Initialised (.tdata) and signed, so it can be found in
   the TLS template, where image .tdata is written for later threads. */
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
  /* This exact text: cosmocc's tlscc rewrites it into `call __get_tls_<reg>`,
     which reads the thread pointer the way the host OS keeps it. */
  __asm__("movq\t%%fs:0, %0" : "=r"(tp));
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

#if defined(__COSMOPOLITAN__)
/* Cosmopolitan's dl_iterate_phdr reports no PT_TLS; its TLS template is
   [_tdata_start, _tdata_end), copied into every new thread (mktls.c). */
extern unsigned char _tdata_start[] __attribute__((__weak__));
extern unsigned char _tdata_end[] __attribute__((__weak__));
static void find_template_cosmo(void) {
  if (!_tdata_start || _tdata_end <= _tdata_start) return;
  unsigned char *t =
      memmem(_tdata_start, _tdata_end - _tdata_start, CX_RESERVE_SIG, sizeof CX_RESERVE_SIG);
  if (!t || (size_t)(_tdata_end - t) < CX_STATIC_TLS_RESERVE) return;
  g_template = t;
#if defined(__x86_64__)
  /* ape.lds puts .tdata, page-aligned, in the read-only segment: writes go
     through an mprotect window.  aarch64.lds keeps it writable beside .data. */
  g_relro_lo = (uintptr_t)_tdata_start;
  g_relro_hi = (uintptr_t)_tdata_end;
#endif
}
#endif

/* Other threads, minus those already there at start-up: under qemu-user
   /proc/self/task also lists qemu's own threads (docs/runtime.md). */
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
#if defined(__COSMOPOLITAN__)
  (void)find_template;
  find_template_cosmo();
#else
  dl_iterate_phdr(find_template, NULL);
#endif
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

/* Static TLS: carve the image's block out of the host's reserve. */
int cx_static_tls_place(struct cx_ctx *c, uint32_t req) {
  struct cx_image_hdr *h = &c->h;
  if (!h->tls_memsz) return 0;
  if (req & CX_F_STATIC_TLS) {
    if (!cx_static_tls)
      return cx_fail(c->err, c->errlen,
                     "image uses static (local-exec/initial-exec) thread-local storage, which "
                     "needs the static TLS reserve of an interpreter made by 'cosmoext embed'; "
                     "this interpreter has none: rebuild with --pic");
    if (h->tls_filesz && cx_static_tls_can_seed(c->err, c->errlen) != 0) return -1;
    size_t align = h->tls_align > 64 ? 0 : h->tls_align;
    size_t start = align ? (cx_static_tls->used + align - 1) & ~(align - 1) : 0;
    if (!align || start + h->tls_memsz > cx_static_tls->size)
      return cx_fail(c->err, c->errlen,
                     "static TLS reserve exhausted (%zu of %zu bytes used, image needs %u aligned "
                     "to %u)", cx_static_tls->used, cx_static_tls->size, h->tls_memsz,
                     h->tls_align);
    c->tls_used_before = cx_static_tls->used;
    c->tls_tpoff = cx_static_tls->tpoff + (intptr_t)start;
    c->tls_start = start;
    cx_static_tls->used = start + h->tls_memsz;
  }
  return 0;
}
