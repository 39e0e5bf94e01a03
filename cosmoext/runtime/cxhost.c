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
  {0, "__register_frame_info", (const void *)register_frame_info},               \
  {0, "__deregister_frame_info", (const void *)deregister_frame_info},
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
  {0, "__register_frame_info", (const void *)__register_frame_info},             \
  {0, "__deregister_frame_info", (const void *)__deregister_frame_info},
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
  {0, "strcpy", (const void *)cx_strcpy}, {0, "stpcpy", (const void *)cx_stpcpy},  \
  {0, "strchrnul", (const void *)cx_strchrnul}, {0, "wmemrchr", (const void *)cx_wmemrchr},
#else
#define IFUNC_WRAPPERS
#endif

#define UNWIND(name) {0, #name, (const void *)name}
static struct cx_export overrides[] = {
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
    {0, "__tls_get_addr", (const void *)cx_tls_get_addr},
    {0, "_dl_find_object", (const void *)cx_dl_find_object},
    {0, "dl_iterate_phdr", (const void *)cx_dl_iterate_phdr},
    {0, "dlopen", (const void *)cx_dlopen},
    {0, "dlsym", (const void *)cx_dlsym},
    {0, "dlclose", (const void *)cx_dlclose},
    {0, "dlerror", (const void *)cx_dlerror},
    {0, "cosmoext_closure_new", (const void *)cosmoext_closure_new},
    {0, "cosmoext_closure_free", (const void *)cosmoext_closure_free},
    {0, "cosmoext_closure_userdata", (const void *)cosmoext_closure_userdata},
};

static uint32_t override_hash[sizeof overrides / sizeof overrides[0]];

const void *cx_resolve(const char *name, uint32_t hash) {
  /* The runtime's own few names first (hash compare, then the name). */
  for (size_t i = 0; i < sizeof overrides / sizeof overrides[0]; i++) {
    if (!override_hash[i]) override_hash[i] = cx_gnu_hash_str(overrides[i].name);
    if (override_hash[i] == hash && strcmp(overrides[i].name, name) == 0)
      return overrides[i].addr;
  }
  const struct cx_export *e = cx_export_find(name, hash);
  return e ? e->addr : NULL;
}
