/* Dynamic TLS for images: the loader's own __tls_get_addr, one block per
   module and thread, allocated on first use and freed at thread exit. */
#define _GNU_SOURCE 1
#include "cxtls_dynamic.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CX_MAX_TLS_MODULES 1024

struct tls_module {
  const void *tmpl;
  size_t filesz, memsz, align;
  int live;
};

static struct tls_module g_mods[CX_MAX_TLS_MODULES + 1];
static size_t g_nmods; /* published with release ordering */
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* A thread without blocks yet: n == 0 sends every access to the slow path,
   so the fast path needs no NULL check. */
static struct cx_dtv g_no_blocks;
/* The calling thread's blocks (read by the aarch64 descriptor resolver). */
__attribute__((visibility("hidden"))) __thread struct cx_dtv *cx_tls_dtv CX_TLS_MODEL =
    &g_no_blocks;

static void free_dtv(void *p) {
  struct cx_dtv *d = p;
  for (size_t i = 0; i < d->n; i++) free(d->block[i]);
  free(d);
  cx_tls_dtv = &g_no_blocks;
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

/* Out of line and a tail call, so that the fast path saves no register. */
__attribute__((noinline, cold)) static void *slow_path(const struct cx_tls_index *ti) {
  size_t mod = (size_t)ti->module;
  size_t n = __atomic_load_n(&g_nmods, __ATOMIC_ACQUIRE);
  struct cx_dtv *d = cx_tls_dtv == &g_no_blocks ? NULL : cx_tls_dtv;
  if (mod == 0 || mod > n || !g_mods[mod].live) abort(); /* corrupt GOT: nothing sane to return */
  if (!d || d->n < n) {
    size_t old = d ? d->n : 0;
    struct cx_dtv *nd = realloc(d, sizeof *nd + n * sizeof(void *));
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
  return (char *)b + ti->offset;
}

/* As cheap as the C library's: a thread-pointer load (initial-exec), a
   bounds check, the block (a generation check is not needed: a block, once
   made, stays until the thread exits). */
void *cx_tls_get_addr(void *arg) {
  const struct cx_tls_index *ti = arg;
  struct cx_dtv *d = cx_tls_dtv;
  size_t i = (size_t)ti->module - 1;
  void *b;
  if (__builtin_expect(i < d->n && (b = d->block[i]) != NULL, 1))
    return (char *)b + ti->offset;
  return slow_path(ti); /* a tail call */
}
