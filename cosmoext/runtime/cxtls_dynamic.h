/* Dynamic TLS: the loader's __tls_get_addr for -fPIC images. */
#ifndef CXTLS_DYNAMIC_H
#define CXTLS_DYNAMIC_H
#include <stddef.h>

/* The GOT pair a general-dynamic access passes to __tls_get_addr. */
struct cx_tls_index {
  unsigned long module, offset;
};

/* A thread's blocks, indexed by module id - 1. */
struct cx_dtv {
  size_t n;
  void *block[];
};
/* Initial-exec where the runtime may be dlopened (host builds): one load from
   the thread pointer, where general-dynamic would make every image TLS access
   a second call, to the C library's __tls_get_addr.  It makes the runtime's
   TLS static, taken from the surplus glibc keeps for dlopened objects
   (rtld.optional_static_tls, 512 bytes by default); the runtime keeps its TLS
   to a few pointers for that reason (cxdl.c).  Cosmopolitan builds are
   static executables: the compiler already uses local-exec there. */
#if defined(__COSMOPOLITAN__)
#define CX_TLS_MODEL
#else
#define CX_TLS_MODEL __attribute__((tls_model("initial-exec")))
#endif
extern __attribute__((visibility("hidden"))) __thread struct cx_dtv *cx_tls_dtv CX_TLS_MODEL;

/* A module id (1-based) for an image's TLS template; 0 if there are too many. */
size_t cx_tls_register(const void *tmpl, size_t filesz, size_t memsz, size_t align);
void cx_tls_unregister(size_t module);
/* __tls_get_addr as images import it: ti points to a struct cx_tls_index. */
void *cx_tls_get_addr(void *ti);

#endif
