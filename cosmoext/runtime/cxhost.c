/* The names images resolve: the runtime's own few ahead of the generated
   export table, and one unwinder (the interpreter's) shared by all images. */
#define _GNU_SOURCE 1 /* strchrnul, stpcpy */
#include "cxhost.h"

#include <stdlib.h>
#include <string.h>

#include "cxclosure.h"
#include "cxdl.h"
#include "cxexports.h"
#include "cxload.h"
#include "cxtls_dynamic.h"

/* The interpreter's unwinder.  Images do not link their own: a personality
   routine in one image must be able to work on an unwind started in another. */
#include <unwind.h>
#if defined(__COSMOPOLITAN__)
/* LLVM libunwind built bare-metal (libcosmo.a): images' tables go into its
   dynamic FDE cache; __register_frame_info exists on x86_64 only, so images
   that call it get these. */
extern void __unw_add_dynamic_eh_frame_section(uintptr_t eh_frame_start);
extern void __unw_remove_dynamic_eh_frame_section(uintptr_t eh_frame_start);
extern _Unwind_Reason_Code __gcc_personality_v0(int, _Unwind_Action, uint64_t,
                                                struct _Unwind_Exception *,
                                                struct _Unwind_Context *);

void cx_register_frames(const void *eh_frame) {
  __unw_add_dynamic_eh_frame_section((uintptr_t)eh_frame);
}
static void register_frame_info(const void *eh_frame, void *ob) {
  (void)ob;
  __unw_add_dynamic_eh_frame_section((uintptr_t)eh_frame);
}
static void *deregister_frame_info(const void *eh_frame) {
  __unw_remove_dynamic_eh_frame_section((uintptr_t)eh_frame);
  return NULL;
}
#define FRAME_INFO_FUNCS                                                          \
  {"__register_frame_info", (const void *)register_frame_info},                  \
  {"__deregister_frame_info", (const void *)deregister_frame_info},
#elif CX_EXPORTS_LAZY
/* Host builds: libgcc_s.so.1, opened when an image first imports one of its
   names instead of with the runtime (loading it was most of the runtime's
   import time).  Until then images' .eh_frame wait in a list: nothing can
   unwind through an image with an unwinder that is not loaded.  One already
   in the process (a native C++ extension's) is adopted at the next image
   load. */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>

#define CX_UNWINDER "libgcc_s.so.1"
#define CX_FROM_UNWINDER ((const void *)1) /* an overrides entry dlsym'd from it */
static pthread_mutex_t g_unw_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_unw; /* its handle once open; published with release ordering */
static void (*g_register_frame_info)(const void *, void *);
static const void **g_pending; /* .eh_frame of images loaded before it */
static size_t g_npending, g_pending_cap;

static void register_now(const void *eh_frame) {
  /* libgcc's struct object is six words today; the rest is slack. */
  void *ob = calloc(1, 256);
  if (ob) g_register_frame_info(eh_frame, ob);
}

/* Whether the unwinder is in the process.  Not dlopen(RTLD_NOLOAD), which
   searches the file system for a name that is not loaded: the loaded
   objects, only when some were added since the last look. */
static unsigned long long g_adds_seen;

static int find_unwinder(struct dl_phdr_info *info, size_t size, void *data) {
  unsigned long long *adds = data;
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
    if (info->dlpi_adds == g_adds_seen) return -1; /* nothing new */
    *adds = info->dlpi_adds;
  }
  const char *slash = strrchr(info->dlpi_name, '/');
  return strcmp(slash ? slash + 1 : info->dlpi_name, CX_UNWINDER) == 0;
}

/* With g_unw_lock held: the unwinder's handle, opening it if LOAD (else only
   if it is already in the process), and the pending frames registered. */
static void *unwinder_locked(int load) {
  if (g_unw) return g_unw;
  if (!load) {
    unsigned long long adds = 0;
    int found = dl_iterate_phdr(find_unwinder, &adds);
    if (adds) g_adds_seen = adds;
    if (found != 1) return NULL;
  }
  void *h = dlopen(CX_UNWINDER, RTLD_NOW | RTLD_LOCAL);
  if (!h) return NULL;
  void *reg = dlsym(h, "__register_frame_info");
  if (!reg) {
    dlclose(h);
    return NULL;
  }
  g_register_frame_info = (void (*)(const void *, void *))reg;
  for (size_t i = 0; i < g_npending; i++) register_now(g_pending[i]);
  free(g_pending);
  g_pending = NULL;
  g_npending = g_pending_cap = 0;
  __atomic_store_n(&g_unw, h, __ATOMIC_RELEASE);
  return h;
}

void cx_register_frames(const void *eh_frame) {
  pthread_mutex_lock(&g_unw_lock);
  if (!unwinder_locked(0) && g_npending == g_pending_cap) {
    size_t cap = g_pending_cap ? 2 * g_pending_cap : 16;
    const void **p = realloc(g_pending, cap * sizeof *p);
    if (p) {
      g_pending = p;
      g_pending_cap = cap;
    } else {
      unwinder_locked(1); /* no room to wait: register now */
    }
  }
  if (g_unw)
    register_now(eh_frame);
  else if (g_npending < g_pending_cap)
    g_pending[g_npending++] = eh_frame;
  pthread_mutex_unlock(&g_unw_lock);
}

static const void *unwinder_sym(const char *name) {
  void *h = __atomic_load_n(&g_unw, __ATOMIC_ACQUIRE);
  if (!h) {
    pthread_mutex_lock(&g_unw_lock);
    h = unwinder_locked(1);
    pthread_mutex_unlock(&g_unw_lock);
  }
  return h ? dlsym(h, name) : NULL;
}
#define FRAME_INFO_FUNCS                                                          \
  {"__register_frame_info", CX_FROM_UNWINDER},                                    \
  {"__deregister_frame_info", CX_FROM_UNWINDER},
#else
/* libgcc_s, or libgcc_eh in a static build. */
extern void __register_frame_info(const void *, void *);
extern const void *_Unwind_Find_FDE(void *, void *);
extern void *__deregister_frame_info(const void *);
extern _Unwind_Reason_Code __gcc_personality_v0(int, _Unwind_Action, _Unwind_Exception_Class,
                                                struct _Unwind_Exception *,
                                                struct _Unwind_Context *);

void cx_register_frames(const void *eh_frame) {
  /* libgcc's struct object is six words today; the rest is slack. */
  void *ob = calloc(1, 256);
  if (ob) __register_frame_info(eh_frame, ob);
}
#define FRAME_INFO_FUNCS                                                          \
  {"__register_frame_info", (const void *)__register_frame_info},                \
  {"__deregister_frame_info", (const void *)__deregister_frame_info},
#endif

#if defined(__COSMOPOLITAN__) && defined(__x86_64__)
#include <wchar.h>
/* libcosmo's string functions with target_clones are GNU ifuncs, which the
   export table leaves out (gen_exports --no-ifunc); images get plain
   wrappers, since direct calls to ifuncs work. */
wchar_t *wmemrchr(const wchar_t *, wchar_t, size_t);
static char *cx_strcpy(char *d, const char *s) { return strcpy(d, s); }
static char *cx_stpcpy(char *d, const char *s) { return stpcpy(d, s); }
static char *cx_strchrnul(const char *s, int c) { return strchrnul(s, c); }
static wchar_t *cx_wmemrchr(const wchar_t *s, wchar_t c, size_t n) { return wmemrchr(s, c, n); }
#define IFUNC_WRAPPERS                                                            \
  {"strcpy", (const void *)cx_strcpy}, {"stpcpy", (const void *)cx_stpcpy},        \
  {"strchrnul", (const void *)cx_strchrnul}, {"wmemrchr", (const void *)cx_wmemrchr},
#else
#define IFUNC_WRAPPERS
#endif

#ifdef CX_FROM_UNWINDER
#define UNWIND(name) {#name, CX_FROM_UNWINDER}
#else
#define UNWIND(name) {#name, (const void *)name}
#endif
static const struct {
  const char *name;
  const void *addr;
} overrides[] = {
    IFUNC_WRAPPERS
    UNWIND(_Unwind_RaiseException),
    UNWIND(_Unwind_Resume),
    UNWIND(_Unwind_Resume_or_Rethrow),
    UNWIND(_Unwind_DeleteException),
    UNWIND(_Unwind_ForcedUnwind),
    UNWIND(_Unwind_Backtrace),
    UNWIND(_Unwind_GetGR),
    UNWIND(_Unwind_SetGR),
    UNWIND(_Unwind_GetIP),
    UNWIND(_Unwind_GetIPInfo),
    UNWIND(_Unwind_SetIP),
    UNWIND(_Unwind_GetCFA),
    UNWIND(_Unwind_GetLanguageSpecificData),
    UNWIND(_Unwind_GetRegionStart),
    UNWIND(_Unwind_GetDataRelBase),
    UNWIND(_Unwind_GetTextRelBase),
    UNWIND(_Unwind_FindEnclosingFunction),
    UNWIND(_Unwind_Find_FDE),
    FRAME_INFO_FUNCS
    UNWIND(__gcc_personality_v0),
    {"__tls_get_addr", (const void *)cx_tls_get_addr},
    {"_dl_find_object", (const void *)cx_dl_find_object},
    {"dl_iterate_phdr", (const void *)cx_dl_iterate_phdr},
    {"dlopen", (const void *)cx_dlopen},
    {"dlsym", (const void *)cx_dlsym},
    {"dlclose", (const void *)cx_dlclose},
    {"dlerror", (const void *)cx_dlerror},
    {"cosmoext_closure_new", (const void *)cosmoext_closure_new},
    {"cosmoext_closure_free", (const void *)cosmoext_closure_free},
    {"cosmoext_closure_userdata", (const void *)cosmoext_closure_userdata},
};

#define N_OVERRIDES (sizeof overrides / sizeof overrides[0])
static uint32_t override_hash[N_OVERRIDES];
#ifdef CX_FROM_UNWINDER
static const void *override_addr[N_OVERRIDES]; /* CX_FROM_UNWINDER entries, once found */
#endif

#if CX_EXPORTS_LAZY
#include <elf.h>
#include <sys/mman.h>

/* The Python C API is most of what images import.  dlsym costs about a
   microsecond a name here (error catching, finding the caller, the scope
   walk); looking the name up in the GNU hash table of the object that
   defines the API, as the dynamic linker itself would, costs a tenth of
   that.  That object is the one the dynamic linker bound the runtime's own
   reference to Py_Initialize to, so the answer is the one dlsym would give
   unless an object earlier in the global scope (an LD_PRELOAD library)
   defines a Py name too; for anything not found here, dlsym decides. */
struct cx_gnu_table {
  uintptr_t base;
  const uint32_t *hash; /* DT_GNU_HASH */
  const ElfW(Sym) *sym;
  const char *str;
  const uint16_t *versym; /* may be NULL */
};
static struct cx_gnu_table g_pyapi;
extern void Py_Initialize(void);

static uintptr_t dyn_ptr(uintptr_t base, ElfW(Addr) p) {
  /* glibc relocates these entries in place; other loaders leave them as
     link-time addresses */
  return p < base ? base + p : p;
}

struct find_table {
  uintptr_t want; /* an address inside the object */
  struct cx_gnu_table *out;
};

static int find_table(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct find_table *f = data;
  uintptr_t want = f->want;
  const ElfW(Dyn) *dyn = NULL;
  int inside = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && want >= lo && want - lo < ph->p_memsz) inside = 1;
    if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
  }
  if (!inside) return 0;
  struct cx_gnu_table t = {info->dlpi_addr, NULL, NULL, NULL, NULL};
  for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
    if (dyn->d_tag == DT_GNU_HASH) t.hash = (const uint32_t *)dyn_ptr(t.base, dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_SYMTAB) t.sym = (const ElfW(Sym) *)dyn_ptr(t.base, dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_STRTAB) t.str = (const char *)dyn_ptr(t.base, dyn->d_un.d_ptr);
    if (dyn->d_tag == DT_VERSYM) t.versym = (const uint16_t *)dyn_ptr(t.base, dyn->d_un.d_ptr);
  }
  if (t.hash && t.sym && t.str) *f->out = t;
  return 1;
}

/* NAME's default-version definition in table T (a function or object), or
   NULL: then dlsym decides. */
static const void *gnu_lookup(const struct cx_gnu_table *t, const char *name, uint32_t h) {
  if (!t->hash) return NULL;
  uint32_t nbuckets = t->hash[0], symoffset = t->hash[1], nbloom = t->hash[2],
           shift = t->hash[3];
  const ElfW(Addr) *bloom = (const ElfW(Addr) *)(t->hash + 4);
  const uint32_t *buckets = (const uint32_t *)(bloom + nbloom);
  const uint32_t *chain = buckets + nbuckets;
  const unsigned bits = sizeof(ElfW(Addr)) * 8;
  ElfW(Addr) word = bloom[(h / bits) % nbloom];
  ElfW(Addr) mask = ((ElfW(Addr))1 << (h % bits)) | ((ElfW(Addr))1 << ((h >> shift) % bits));
  if (!nbuckets || (word & mask) != mask) return NULL;
  uint32_t i = buckets[h % nbuckets];
  if (i < symoffset) return NULL;
  for (;; i++) {
    uint32_t h2 = chain[i - symoffset];
    const ElfW(Sym) *s = &t->sym[i];
    if ((h | 1) == (h2 | 1) && s->st_shndx != SHN_UNDEF && strcmp(t->str + s->st_name, name) == 0) {
      int type = ELF64_ST_TYPE(s->st_info);
      if (t->versym && (t->versym[i] & 0x8000)) {
        if (h2 & 1) return NULL;
        continue; /* a hidden version: the default one may follow */
      }
      if (type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE) return NULL;
      return (const void *)(t->base + s->st_value);
    }
    if (h2 & 1) return NULL;
  }
}

static const void *pyapi_lookup(const char *name, uint32_t h) {
  if (name[0] != 'P' && !(name[0] == '_' && name[1] == 'P')) return NULL;
  return gnu_lookup(&g_pyapi, name, h);
}
/* Populated in one go when the runtime is imported: the first images touch
   entries all over the array, and one fault per page (two: a read maps the
   zero page, the store copies it) cost more than the lookups themselves. */
void cx_exports_init(void) {
  if (cx_export_cache) return;
  void *p = mmap(NULL, cx_export_count * sizeof(void *), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p != MAP_FAILED) cx_export_cache = (const void **)p;
  struct find_table f = {(uintptr_t)&Py_Initialize, &g_pyapi};
  dl_iterate_phdr(find_table, &f);
  if (g_pyapi.hash) cx_export_lookup = pyapi_lookup;
}
/* Images built with cxx-runtime = shared import the C++ runtime: the
   process's libstdc++.so.6, which native C++ extensions share too, opened
   at the first such import.  Only for C++ names (cx_cxx_name) that the
   export table lacks, of images with a non-weak import of one (cxfixup.c):
   a static-runtime image's weak __cxa_pure_virtual does not open it. */
#define CX_CXXRT "libstdc++.so.6"
static void *g_cxxrt;
static struct cx_gnu_table g_cxxtab; /* its symbols, for the fast lookup */

const void *cx_resolve_cxx(const char *name, uint32_t hash) {
  void *h = __atomic_load_n(&g_cxxrt, __ATOMIC_ACQUIRE);
  if (!h) {
    pthread_mutex_lock(&g_unw_lock);
    if (!g_cxxrt && (h = dlopen(CX_CXXRT, RTLD_NOW | RTLD_LOCAL)) != NULL) {
      unwinder_locked(1); /* its throws unwind through images: register them */
      void *any = dlsym(h, "__gxx_personality_v0");
      struct find_table f = {(uintptr_t)any, &g_cxxtab};
      if (any) dl_iterate_phdr(find_table, &f);
      __atomic_store_n(&g_cxxrt, h, __ATOMIC_RELEASE);
    }
    h = g_cxxrt;
    pthread_mutex_unlock(&g_unw_lock);
  }
  if (!h) return NULL;
  /* The library itself, not its dependencies (libc's __cxa_atexit is an
     export-table name): its own hash table, else dlsym and dladdr. */
  const void *a = gnu_lookup(&g_cxxtab, name, hash);
  if (a) return a;
  a = dlsym(h, name);
  Dl_info info;
  struct link_map *lm = h;
  if (a && (!dladdr(a, &info) || !info.dli_fname || strcmp(info.dli_fname, lm->l_name) != 0))
    return NULL;
  return a;
}
#else
void cx_exports_init(void) {}
#endif

const void *cx_resolve(const char *name, uint32_t hash) {
  /* The runtime's own few names first (hash compare, then the name). */
  for (size_t i = 0; i < N_OVERRIDES; i++) {
    uint32_t h = __atomic_load_n(&override_hash[i], __ATOMIC_RELAXED); /* images' dlsym */
    if (!h) __atomic_store_n(&override_hash[i], h = cx_gnu_hash_str(overrides[i].name),
                             __ATOMIC_RELAXED);
    if (h != hash || strcmp(overrides[i].name, name) != 0) continue;
#ifdef CX_FROM_UNWINDER
    if (overrides[i].addr == CX_FROM_UNWINDER) {
      const void *a = __atomic_load_n(&override_addr[i], __ATOMIC_ACQUIRE);
      if (!a && (a = unwinder_sym(name)) != NULL)
        __atomic_store_n(&override_addr[i], a, __ATOMIC_RELEASE);
      return a;
    }
#endif
    return overrides[i].addr;
  }
  const struct cx_export *e = cx_export_find(name, hash);
  return e ? cx_export_addr(e) : NULL;
}
