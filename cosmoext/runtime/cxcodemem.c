/* cxcodemem: image memory per platform (docs/runtime.md).  Builds with the
   POSIX headers, with Apple's SDK or without it (compat/cx_darwin.h), or with
   cosmocc, where the kind is chosen at run time. */
#if !defined(__APPLE__)
#define _GNU_SOURCE 1
#endif
#if defined(__COSMOPOLITAN__)
#define _COSMO_SOURCE 1 /* IsXnu(), IsWindows() (libc/dce.h) */
#endif
#include "cxcodemem.h"

#if defined(__APPLE__)
#if defined(__has_include) && __has_include(<sys/mman.h>) && __has_include(<libkern/OSCacheControl.h>)
#include <errno.h>
#include <libkern/OSCacheControl.h> /* sys_icache_invalidate */
#include <pthread.h>                /* pthread_jit_write_protect_np */
#include <string.h>
#include <sys/mman.h>
#else
#include "compat/cx_darwin.h" /* no SDK: our own declarations */
#endif
#else
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#endif

#if defined(__COSMOPOLITAN__)
#include <libc/dce.h> /* IsXnu(), IsWindows(): the host OS, known at run time */
/* libc/runtime/runtime.h: pthread_jit_write_protect_np through the APE
   loader's libSystem table on Apple silicon; no-ops elsewhere. */
void __jit_begin(void);
void __jit_end(void);
#endif

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif
#ifndef MAP_JIT
#define MAP_JIT 0x800 /* XNU's value; only used where IsXnu() */
#endif

#define GRANULE 65536u /* Windows allocation granularity = the format's alignment */

/* ---- which kind ------------------------------------------------------------ */

#if defined(__COSMOPOLITAN__)
static int detect_kind(void) {
#if defined(__aarch64__)
  if (IsXnu()) return CX_CODEMEM_MAP_JIT;
#endif
  if (IsWindows()) return CX_CODEMEM_WINDOWS;
  return CX_CODEMEM_MPROTECT;
}
#elif defined(__APPLE__) && defined(__aarch64__)
static int detect_kind(void) {
  /* Every Apple silicon macOS has it; the check keeps odd hosts working. */
  return pthread_jit_write_protect_supported_np() ? CX_CODEMEM_MAP_JIT : CX_CODEMEM_MPROTECT;
}
#elif defined(_WIN32)
#error "native Windows builds are not supported: build with cosmocc"
#else
static int detect_kind(void) { return CX_CODEMEM_MPROTECT; }
#endif

int cx_codemem_kind(void) {
  static int kind; /* racy first call is harmless: every caller computes the same */
  int k = __atomic_load_n(&kind, __ATOMIC_RELAXED);
  if (!k) {
    k = detect_kind();
    __atomic_store_n(&kind, k, __ATOMIC_RELAXED);
  }
  return k;
}

const char *cx_codemem_name(void) {
  switch (cx_codemem_kind()) {
    case CX_CODEMEM_MAP_JIT: return "map-jit";
    case CX_CODEMEM_WINDOWS: return "windows";
    default: return "mprotect";
  }
}

/* ---- the MAP_JIT write window and the instruction cache ---------------------- */

static void jit_write_begin(void) {
#if defined(__COSMOPOLITAN__)
  __jit_begin();
#elif defined(__APPLE__) && defined(__aarch64__)
  pthread_jit_write_protect_np(0);
#endif
}

static void jit_write_end(void) {
#if defined(__COSMOPOLITAN__)
  __jit_end();
#elif defined(__APPLE__) && defined(__aarch64__)
  pthread_jit_write_protect_np(1);
#endif
}

static void sync_icache(uintptr_t at, size_t size) {
#if defined(__APPLE__)
  sys_icache_invalidate((void *)at, size);
#elif defined(__aarch64__)
  /* GCC and Clang call __clear_cache(), which Cosmopolitan's libc provides
     (sys_icache_invalidate on XNU, dc cvau / ic ivau elsewhere). */
  __builtin___clear_cache((char *)at, (char *)(at + size));
#else
  (void)at; /* x86_64: instruction fetch is coherent with stores */
  (void)size;
#endif
}

static int to_prot(unsigned p) {
  return ((p & CX_MEM_R) ? PROT_READ : 0) | ((p & CX_MEM_W) ? PROT_WRITE : 0) |
         ((p & CX_MEM_X) ? PROT_EXEC : 0);
}

/* ---- reserve ------------------------------------------------------------------ */

/* An anonymous mapping of size bytes with protection prot: at exactly want,
   or (want == 0) anywhere aligned to align (0: the page is enough), by
   over-reserving and trimming only when the alignment is larger. */
static void *map_plain(uintptr_t want, size_t size, size_t align, int prot, int flags) {
  flags |= MAP_PRIVATE | MAP_ANONYMOUS;
  if (!want && align) {
    char *p = mmap(NULL, size + align, prot, flags, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    if (a > (uintptr_t)p) munmap(p, a - (uintptr_t)p);
    if ((uintptr_t)p + size + align > a + size) munmap((void *)(a + size), (uintptr_t)p + align - a);
    return (void *)a;
  }
#ifdef MAP_FIXED_NOREPLACE
  if (want) flags |= MAP_FIXED_NOREPLACE;
#endif
  void *p = mmap((void *)want, size, prot, flags, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (want && (uintptr_t)p != want) { /* kernel treated the hint as a hint */
    munmap(p, size);
    return NULL;
  }
  return p;
}

/* MAP_JIT cannot be MAP_FIXED: the whole reservation is created as one JIT
   mapping (the address is a hint, checked), then every byte outside the code
   ranges is replaced by an ordinary inaccessible mapping. */
static void *reserve_jit(uintptr_t want, size_t size, const struct cx_code_range *code,
                         unsigned ncode) {
  void *p = mmap((void *)want, size, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_JIT, -1, 0);
  if (p == MAP_FAILED) return NULL;
  uintptr_t base = (uintptr_t)p;
  if (want && base != want) {
    munmap(p, size);
    return NULL;
  }
  size_t cur = 0;
  for (unsigned i = 0; i <= ncode; i++) {
    size_t start = i < ncode ? code[i].off : size;
    if (start > size || start < cur) { /* ranges must be sorted, disjoint, inside */
      munmap(p, size);
      errno = EINVAL;
      return NULL;
    }
    if (start > cur &&
        mmap((void *)(base + cur), start - cur, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
      munmap(p, size);
      return NULL;
    }
    if (i < ncode) cur = code[i].off + code[i].size;
  }
  return p;
}

void *cx_codemem_reserve(uintptr_t want, size_t size, size_t align,
                         const struct cx_code_range *code, unsigned ncode) {
  if (cx_codemem_kind() == CX_CODEMEM_MAP_JIT && ncode) return reserve_jit(want, size, code, ncode);
  return map_plain(want, size, align, PROT_NONE, MAP_NORESERVE);
}

int cx_codemem_one_map(void) { return cx_codemem_kind() == CX_CODEMEM_MPROTECT; }

void *cx_codemem_map_rw(uintptr_t want, size_t size, size_t align, int populate) {
  int flags = 0;
#ifdef MAP_POPULATE
  if (populate) flags |= MAP_POPULATE;
#else
  (void)populate;
#endif
  return map_plain(want, size, align, PROT_READ | PROT_WRITE, flags);
}

/* ---- map one segment ---------------------------------------------------------- */

/* POSIX: anonymous memory, read-write while the file's bytes (already read
   and validated by the loader) are copied in, then the final protection
   unless the loader still has to write it.  Nothing refers to the file
   afterwards: not a noexec mount (no PROT_EXEC file mapping is asked for),
   not a later truncation (no SIGBUS), not bytes changed after validation
   (docs/runtime.md, "Reading the file"). */
static int map_anon_copy(uintptr_t at, size_t size, const void *bytes, size_t filesz,
                         unsigned final, int writable) {
  void *p = mmap((void *)at, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return -1;
  if (filesz) memcpy(p, bytes, filesz);
  if (!writable) return cx_codemem_protect(at, size, final);
  return 0;
}

/* MAP_JIT: the code range is already JIT memory (reserve_jit); copy the
   bytes in inside this thread's write window.  The rest is still zero. */
static int map_jit_code(uintptr_t at, size_t size, const void *bytes, size_t filesz,
                        int writable) {
  jit_write_begin();
  memcpy((void *)at, bytes, filesz);
  if (!writable) {
    jit_write_end();
    sync_icache(at, size);
  }
  return 0;
}

/* Windows: anonymous, granule-sized, copied; then VirtualProtect()ed. */
static int map_copy(uintptr_t at, size_t size, const void *bytes, size_t filesz, unsigned final,
                    int writable) {
  size_t len = (size + GRANULE - 1) & ~(size_t)(GRANULE - 1);
  void *p = mmap((void *)at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return -1;
  memcpy(p, bytes, filesz);
  if (!writable) return cx_codemem_protect(at, size, final);
  return 0;
}

int cx_codemem_map(uintptr_t at, size_t size, size_t filesz, const void *bytes, unsigned final,
                   int writable) {
  switch (cx_codemem_kind()) {
    case CX_CODEMEM_MAP_JIT:
      if (final & CX_MEM_X) return map_jit_code(at, size, bytes, filesz, writable);
      return map_anon_copy(at, size, bytes, filesz, final, writable);
    case CX_CODEMEM_WINDOWS:
      return map_copy(at, size, bytes, filesz, final, writable);
    default:
      return map_anon_copy(at, size, bytes, filesz, final, writable);
  }
}

/* ---- final protection ------------------------------------------------------------ */

int cx_codemem_protect(uintptr_t at, size_t size, unsigned final) {
  if ((final & CX_MEM_X) && cx_codemem_kind() == CX_CODEMEM_MAP_JIT) {
    /* Already executable for every thread outside a write window. */
    jit_write_end();
    sync_icache(at, size);
    return 0;
  }
  if (mprotect((void *)at, size, to_prot(final)) != 0) return -1;
  if (final & CX_MEM_X) sync_icache(at, size);
  return 0;
}

void cx_codemem_abort(void) {
  if (cx_codemem_kind() == CX_CODEMEM_MAP_JIT) jit_write_end();
}
