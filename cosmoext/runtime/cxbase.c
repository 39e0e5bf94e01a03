/* The loader's small shared pieces: the one error format, the name hash,
   and which machine this is.  Everything else in the loader may use them. */
#include <stdarg.h>
#include <stdio.h>

#include "cxformat.h"
#include "cxload.h"
#include "cxloadctx.h"

/* One error format: the caller prefixes "cannot load PATH: ". */
int cx_fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

uint32_t cx_gnu_hash_str(const char *s) {
  uint32_t h = 5381;
  for (; *s; s++) h = h * 33 + (unsigned char)*s;
  return h;
}

unsigned cx_machine(void) {
#if defined(__x86_64__)
  return CX_EM_X86_64;
#elif defined(__aarch64__)
  return CX_EM_AARCH64;
#else
  return 0;
#endif
}

const char *cx_machine_name(unsigned m) {
  return m == CX_EM_X86_64 ? "x86_64" : m == CX_EM_AARCH64 ? "aarch64" : "unknown";
}
