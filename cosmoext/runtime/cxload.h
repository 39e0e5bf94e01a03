/* The loader's public face: cx_load maps a .cosmoext image in place of
   dlopen.  It uses the C library (stdio, malloc, pthreads, mmap through
   cxcodemem.c); the stages are in cxvalidate/cxplace/cxfixup/cxtls_*. */
#ifndef CXLOAD_H
#define CXLOAD_H
#include <stddef.h>
#include <stdint.h>

#define CX_ERRLEN 1024

/* What the interpreter side provides (module.c, cxhost.c). */
struct cx_host {
  const char *target;     /* "linux-gnu", "cosmo", ... */
  const char *python_abi; /* "cp311" */
  /* Resolve an import by name (hash is the GNU hash); NULL if absent. */
  const void *(*resolve)(const char *name, uint32_t hash);
  /* Register an image's .eh_frame (zero-terminated) with the interpreter's
     unwinder, before its initialisers run; NULL if there is none. */
  void (*register_frames)(const void *eh_frame);
  /* The shared C++ runtime's definition of a C++ name (cxcxx.h), for images
     with a non-weak import of one (built with cxx-runtime = shared); NULL if
     this interpreter has none. */
  const void *(*resolve_cxx)(const char *name, uint32_t hash);
};

struct cx_segment_map {
  uintptr_t start;
  size_t size;
  uint32_t prot;
};

struct cx_image {
  char *path;
  char name[64];
  uintptr_t base;
  size_t vsize; /* bytes mapped at base */
  uintptr_t entry;
  uint32_t flags;
  unsigned nseg;
  struct cx_segment_map seg[8];
  uintptr_t ehhdr, eh;
  size_t ehhdr_size, eh_size;
  uintptr_t fini;
  uint32_t fini_count;
  size_t tls_module; /* 1-based module id for __tls_get_addr, 0: none */
  uint64_t dev, ino, size;
  int64_t mtime_ns;
  struct cx_image *next;
};

struct cx_load_stats {
  uint64_t validate_ns, map_ns, fixup_ns, init_ns;
  uint64_t fixups, imports;
  int reused; /* the file was loaded already: that image was returned */
};

/* Load an image.  On failure returns NULL, writes a one-line reason to err
   and leaves nothing mapped.  Images stay loaded for the process lifetime
   (like CPython never dlclose()s extensions).  If name is not NULL, an image
   holding a different module is refused before anything is mapped.  A file
   loaded already (same device, inode, size and mtime as the open file) gives
   that image back, reused set, whatever its module name: the caller checks
   it. */
struct cx_image *cx_load(const char *path, const char *name, const struct cx_host *host,
                         char *err, size_t errlen, struct cx_load_stats *st);

/* 0: no digest checks; 1: metadata digest (default); 2: also full image. */
extern int cx_verify_digests;

/* The list of loaded images (newest first), for the unwinder hooks. */
struct cx_image *cx_images(void);
uint32_t cx_gnu_hash_str(const char *s);
unsigned cx_machine(void);
const char *cx_machine_name(unsigned machine);

/* Counters for tests: live reservations and bytes mapped by the loader. */
struct cx_counters {
  uint64_t loaded, failed, live_bytes, live_regions;
};
void cx_get_counters(struct cx_counters *c);

#endif
