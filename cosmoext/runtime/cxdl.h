/* The dl* functions images import: unwinder lookups and dlopen & co. */
#ifndef CXDL_H
#define CXDL_H
#include <stddef.h>

/* Unwinder hooks, in place of the C library's (loaded images first). */
int cx_dl_iterate_phdr(int (*cb)(void *info, size_t size, void *data), void *data);
int cx_dl_find_object(void *pc, void *result);

#pragma GCC visibility push(hidden) /* internal to the runtime */
/* dlopen(NULL) is the interpreter: dlsym looks names up as cx_resolve does;
   opening any file fails with a dlerror() message. */
void *cx_dlopen(const char *file, int mode);
void *cx_dlsym(void *handle, const char *name);
int cx_dlclose(void *handle);
char *cx_dlerror(void);
#pragma GCC visibility pop

#endif
