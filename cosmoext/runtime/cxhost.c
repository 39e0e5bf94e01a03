/* The names images resolve: the runtime's own few ahead of the generated
   export table, and one unwinder (the interpreter's) shared by all images. */
#include "cxhost.h"

#include <stdlib.h>
#include <string.h>

#include "cxclosure.h"
#include "cxdl.h"
#include "cxexports.h"
#include "cxload.h"
#include "cxtls_dynamic.h"

/* The interpreter's unwinder (libgcc_s, or libgcc_eh in a static build).
   Images do not link their own: a personality routine in one image must be
   able to work on an unwind started in another. */
#include <unwind.h>
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

#define UNWIND(name) {0, #name, (const void *)name}
static struct cx_export overrides[] = {
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
    UNWIND(__register_frame_info),
    UNWIND(__deregister_frame_info),
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
