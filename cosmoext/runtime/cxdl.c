/* The dl* answers images get (cxhost.c resolves those names here): the
   unwinder's _dl_find_object and dl_iterate_phdr, which answer for loaded
   images and defer to the C library for the rest; and dlopen & co., which
   never reach the system dynamic loader. */
#define _GNU_SOURCE 1
#include "cxdl.h"

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>

#include "cxhost.h"
#include "cxload.h"

#define CX_MAX_PHDRS (8 + 2)

int cx_dl_find_object(void *pc, void *result) {
  uintptr_t a = (uintptr_t)pc;
  for (struct cx_image *im = cx_images(); im; im = im->next) {
    if (a < im->base || a - im->base >= im->vsize) continue;
#ifdef DLFO_STRUCT_HAS_EH_DBASE
    struct dl_find_object *r = result;
    memset(r, 0, sizeof *r);
    r->dlfo_map_start = (void *)im->base;
    r->dlfo_map_end = (void *)(im->base + im->vsize);
    r->dlfo_eh_frame = (void *)im->ehhdr;
    return im->ehhdr ? 0 : -1;
#else
    (void)result;
    return -1;
#endif
  }
#ifdef DLFO_STRUCT_HAS_EH_DBASE
  return _dl_find_object(pc, result);
#else
  return -1;
#endif
}

struct iter {
  int (*cb)(void *, size_t, void *);
  void *data;
};

int cx_dl_iterate_phdr(int (*cb)(void *info, size_t size, void *data), void *data) {
  int r = dl_iterate_phdr((int (*)(struct dl_phdr_info *, size_t, void *))cb, data);
  if (r) return r;
  for (struct cx_image *im = cx_images(); im; im = im->next) {
    ElfW(Phdr) ph[CX_MAX_PHDRS];
    struct dl_phdr_info info;
    unsigned n = 0;
    memset(ph, 0, sizeof ph);
    for (unsigned i = 0; i < im->nseg && n < 8; i++, n++) {
      ph[n].p_type = PT_LOAD;
      ph[n].p_vaddr = im->seg[i].start - im->base;
      ph[n].p_memsz = ph[n].p_filesz = im->seg[i].size;
      ph[n].p_flags = ((im->seg[i].prot & 1) ? PF_R : 0) | ((im->seg[i].prot & 2) ? PF_W : 0) |
                      ((im->seg[i].prot & 4) ? PF_X : 0);
      ph[n].p_align = 0x10000;
    }
    if (im->ehhdr) {
      ph[n].p_type = PT_GNU_EH_FRAME;
      ph[n].p_vaddr = im->ehhdr - im->base;
      ph[n].p_memsz = ph[n].p_filesz = im->ehhdr_size;
      ph[n].p_flags = PF_R;
      ph[n].p_align = 4;
      n++;
    }
    memset(&info, 0, sizeof info);
    info.dlpi_addr = im->base;
    info.dlpi_name = im->path;
    info.dlpi_phdr = ph;
    info.dlpi_phnum = (ElfW(Half))n;
    r = cb(&info, sizeof info, data);
    if (r) return r;
  }
  return 0;
}

/* As if statically linked against the export table, so probes for optional
   functions (psutil's dlopen("libc.so.6") + dlsym("mallinfo2")) fall back. */
static char cx_host_handle;
static _Thread_local const char *cx_dl_err;
/* dlerror()'s text, per thread: on the heap, as the runtime's TLS must stay
   small (cxtls_dynamic.h: it is static TLS in host builds). */
#define CX_DL_BUF 320
static pthread_key_t g_dl_key;
static pthread_once_t g_dl_once = PTHREAD_ONCE_INIT;

static void dl_key(void) { pthread_key_create(&g_dl_key, free); }

__attribute__((format(printf, 1, 2))) static void set_error(const char *fmt, ...) {
  pthread_once(&g_dl_once, dl_key);
  char *buf = pthread_getspecific(g_dl_key);
  if (!buf && (buf = malloc(CX_DL_BUF)) != NULL && pthread_setspecific(g_dl_key, buf) != 0) {
    free(buf);
    buf = NULL;
  }
  if (!buf) {
    cx_dl_err = "dlerror: out of memory";
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, CX_DL_BUF, fmt, ap);
  va_end(ap);
  cx_dl_err = buf;
}

void *cx_dlopen(const char *file, int mode) {
  (void)mode;
  if (file == NULL) return &cx_host_handle;
  set_error("%.200s: a .cosmoext image cannot open shared objects (no dynamic loading)", file);
  return NULL;
}

void *cx_dlsym(void *handle, const char *name) {
  if (handle != NULL && handle != &cx_host_handle) { /* RTLD_DEFAULT is NULL */
    cx_dl_err = "dlsym: invalid handle (only dlopen(NULL) and RTLD_DEFAULT are known)";
    return NULL;
  }
  const void *a = cx_resolve(name, cx_gnu_hash_str(name));
  if (a == NULL) set_error("undefined symbol: %.200s (not in this interpreter's export table)", name);
  return (void *)a;
}

int cx_dlclose(void *handle) {
  if (handle == &cx_host_handle) return 0;
  cx_dl_err = "dlclose: invalid handle";
  return -1;
}

char *cx_dlerror(void) {
  const char *e = cx_dl_err;
  cx_dl_err = NULL;
  return (char *)e;
}
