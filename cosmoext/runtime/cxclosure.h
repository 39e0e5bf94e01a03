/* cxclosure: the runtime's closure pool (public API in ../include/cosmoext.h). */
#ifndef CXCLOSURE_H
#define CXCLOSURE_H
#include <stddef.h>
#include <stdint.h>

#include "../include/cosmoext.h"

#ifndef CX_CLOSURE_POOL
#define CX_CLOSURE_POOL COSMOEXT_CLOSURE_POOL
#endif
#define CX_CLOSURE_STUB_SIZE 16

struct cx_closure_info {
  size_t capacity;   /* stubs in the pool (0: no stubs for this architecture) */
  size_t live;       /* closures allocated now */
  size_t peak;       /* most ever allocated at once */
  size_t stub_size;  /* bytes per stub */
  uintptr_t stubs;   /* the stub block, in the runtime's text */
  uintptr_t slots;   /* the matching read-write table */
  size_t slot_size;
  const char *arch;
};

void cx_closure_info(struct cx_closure_info *info);

#endif
