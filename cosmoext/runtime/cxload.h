/* cosmoext runtime loader: maps a .cosmoext image in place of dlopen.
   Freestanding in spirit: only open/fstat/mmap/mprotect/munmap/close and a
   few string functions, so the same file builds with cosmocc. */
#ifndef CXLOAD_H
#define CXLOAD_H
#include <stddef.h>
#include <stdint.h>

#define CX_ERRLEN 1024

/* What the interpreter side provides. */
struct cx_host {
  const char *target;     /* "linux-gnu", "cosmo", ... */
  const char *python_abi; /* "cp311" */
  /* Resolve an import by name (hash is the GNU hash); NULL if absent. */
  const void *(*resolve)(const char *name, uint32_t hash);
  /* Register an image's .eh_frame (zero-terminated) with the interpreter's
     unwinder, before its initialisers run; NULL if there is none. */
  void (*register_frames)(const void *eh_frame);
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
  size_t vsize;
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
};

/* Load an image.  On failure returns NULL, writes a one-line reason to err
   and leaves nothing mapped.  Images stay loaded for the process lifetime
   (like CPython never dlclose()s extensions).  If name is not NULL, an image
   holding a different module is refused before anything is mapped. */
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

/* Static TLS reserve (embedded interpreters only): set by the host. */
struct cx_tls_reserve {
  intptr_t tpoff; /* reserve start minus the thread pointer */
  size_t size, used;
};
/* (offsets below are from the reserve's start) */
extern struct cx_tls_reserve *cx_static_tls;
void cx_static_tls_init(void); /* embedded builds (CX_STATIC_TLS_RESERVE) */
int cx_static_tls_can_seed(char *err, size_t errlen);
int cx_static_tls_seed(size_t off, const void *data, size_t n, char *err, size_t errlen);

/* Dynamic TLS (the loader's __tls_get_addr). */
size_t cx_tls_register(const void *tmpl, size_t filesz, size_t memsz, size_t align);
void cx_tls_unregister(size_t module);
void *cx_tls_get_addr(void *ti);
#if defined(__aarch64__)
/* TLS descriptor resolvers (cxtls.c; called with x0 = the descriptor, return
   the variable's offset from tpidr_el0, preserve every other register). */
void cx_tlsdesc_static(void);  /* argument: the offset itself (static TLS) */
void cx_tlsdesc_dynamic(void); /* argument: module << 48 | offset in its block */
#endif

/* Unwinder hooks exported to images in place of the libc ones. */
int cx_dl_iterate_phdr(int (*cb)(void *info, size_t size, void *data), void *data);
int cx_dl_find_object(void *pc, void *result);

#endif
