/* cxcodemem: image memory per platform (mprotect; MAP_JIT on Apple silicon;
   Windows through Cosmopolitan), the only place the runtime asks for
   executable memory.  Why each platform needs its own path: docs/runtime.md. */
#ifndef CXCODEMEM_H
#define CXCODEMEM_H
#include <stddef.h>
#include <stdint.h>

enum cx_codemem_kind {
  CX_CODEMEM_MPROTECT = 1,
  CX_CODEMEM_MAP_JIT = 2,
  CX_CODEMEM_WINDOWS = 3,
};

/* Protection bits as in the format (cxformat.h CX_PROT_*). */
#define CX_MEM_R 1u
#define CX_MEM_W 2u
#define CX_MEM_X 4u

/* A range of the reservation (offsets from its start) that will hold code. */
struct cx_code_range {
  size_t off, size;
};

int cx_codemem_kind(void);
const char *cx_codemem_name(void);

/* Reserve size bytes of address space, inaccessible except for the code
   ranges (which MAP_JIT needs to create now).  want != 0: only at exactly
   that address (NULL if it is taken); else aligned to align (0: a page is
   enough).  Returns the start or NULL. */
void *cx_codemem_reserve(uintptr_t want, size_t size, size_t align,
                         const struct cx_code_range *code, unsigned ncode);

/* 1 where an image can be one read-write anonymous mapping whose ranges are
   then given their final protection with cx_codemem_protect (plain
   mprotect: Linux, Intel macOS, Cosmopolitan on either); 0 where each
   segment needs cx_codemem_map (MAP_JIT code, Windows granules). */
int cx_codemem_one_map(void);

/* That mapping: size bytes, read-write, zero; at want or aligned as in
   cx_codemem_reserve.  Returns the start or NULL. */
void *cx_codemem_map_rw(uintptr_t want, size_t size, size_t align, int populate);

/* Put one segment in place at `at` (inside a reservation, 64 KiB-aligned):
   a copy of filesz bytes at `bytes` (the loader's validated copy of the
   file), then zeros up to size (a multiple of the page size).  The memory is
   anonymous on every platform: the image never depends on its file once
   loaded.  final: the segment's final protection (CX_MEM_*).  writable: it
   will be written (fixups, a zeroed tail) and then passed to
   cx_codemem_protect; otherwise it gets its final protection now.  Never
   writable and executable at once.  Returns 0, or -1 with errno set. */
int cx_codemem_map(uintptr_t at, size_t size, size_t filesz, const void *bytes, unsigned final,
                   int writable);

/* Give a segment mapped `writable` its final protection; for code this ends
   the write: RX, MAP_JIT write window closed, instruction cache synchronised.
   Returns 0, or -1 with errno set. */
int cx_codemem_protect(uintptr_t at, size_t size, unsigned final);

/* After a failed load: close this thread's write window if one is open. */
void cx_codemem_abort(void);

#endif
