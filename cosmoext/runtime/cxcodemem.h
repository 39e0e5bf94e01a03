/* cxcodemem: the runtime's platform layer for image memory, and the only
   place where it asks for executable memory.

   The loader (cxload.c) reserves an image's address range, maps each
   segment into it, writes fixups and then gives every segment its final
   protection.  How memory that will hold code may be written differs per
   platform, so those steps go through this layer:

   CX_CODEMEM_MPROTECT  Linux, the BSDs, Intel macOS.  Code is mapped
       read-write (private, from the file where possible), written, then
       mprotect()ed to read+execute.  A segment that needs no writing is
       mapped read+execute straight from the file.  On aarch64 the
       instruction cache is synchronised after the write.

   CX_CODEMEM_MAP_JIT   macOS on Apple silicon, where the kernel refuses any
       page that is both writable and executable and refuses to make
       anonymous or unsigned-file memory executable with mprotect().  The
       only way to write code is a MAP_JIT region (which must be anonymous
       and cannot be MAP_FIXED): the whole image is reserved as one MAP_JIT
       mapping at the chosen address, everything but its code ranges is
       then replaced by ordinary PROT_NONE mappings, and code bytes are
       copied in inside a per-thread write window
       (pthread_jit_write_protect_np(0) ... (1)) followed by
       sys_icache_invalidate().  Outside a window a thread sees the JIT
       pages as read+execute; the window is open only on the loading thread
       and only while it loads.  (mprotect() on MAP_JIT memory fails on
       Apple silicon, so the pages stay MAP_JIT afterwards.)  Code is always
       copied: an mmap(PROT_EXEC) of a .cosmoext file would be refused as
       unsigned code.

   CX_CODEMEM_WINDOWS   Windows, as Cosmopolitan exposes it.  Cosmopolitan's
       mmap() there is CreateFileMapping + MapViewOfFileEx with an
       execute-capable section (PAGE_EXECUTE_READWRITE for anonymous memory,
       PAGE_EXECUTE_WRITECOPY for private file views), then VirtualProtect()
       to the protection asked for; its mprotect() is VirtualProtect().  So
       each page is RW or RX, never both, and RW -> RX works.  But Windows
       cannot split a view: Cosmopolitan makes one view per 64 KiB granule
       (for mappings up to 100 MiB), MAP_FIXED must be granule-aligned, and
       file offsets must be too.  Every segment is therefore an anonymous
       mapping rounded up to 64 KiB (the format's segment alignment) with
       the file bytes copied in, then VirtualProtect()ed.  Images larger
       than 100 MiB cannot be loaded there (one view for the whole
       reservation, which MAP_FIXED cannot replace piecewise).

   Which kind applies: at compile time for ordinary builds; at run time in a
   Cosmopolitan build (__COSMOPOLITAN__), whose one binary runs on every OS:
   IsXnu() on aarch64 -> MAP_JIT, IsWindows() -> WINDOWS, else MPROTECT.

   What ran where: MPROTECT on Linux x86_64 (the whole test suite, also under
   a seccomp filter that kills any W+X request) and on Linux aarch64 under
   qemu-user.  MAP_JIT: compiled with clang --target=arm64-apple-macos11
   (tests/test_macos_compile.py), not run.  WINDOWS and the Cosmopolitan
   run-time selection: not compiled here (no cosmocc); what they rely on was
   read from Cosmopolitan's libc/intrin/mmap.c and mprotect.c. */
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
   that address (NULL if it is taken).  Returns the start or NULL. */
void *cx_codemem_reserve(uintptr_t want, size_t size, const struct cx_code_range *code,
                         unsigned ncode);

/* Put one segment in place at `at` (inside a reservation, 64 KiB-aligned):
   filesz bytes of the file (fd at off; the same bytes at `bytes`, for
   platforms that copy), then zeros up to size (a multiple of the page size).
   final: the segment's final protection (CX_MEM_*).  writable: it will be
   written (fixups, a zeroed tail) and then passed to cx_codemem_protect;
   otherwise it gets its final protection now.  Never writable and
   executable at once.  Returns 0, or -1 with errno set. */
int cx_codemem_map(uintptr_t at, size_t size, int fd, uint64_t off, size_t filesz,
                   const void *bytes, unsigned final, int writable, size_t page);

/* Give a segment mapped `writable` its final protection; for code this ends
   the write: RX, MAP_JIT write window closed, instruction cache synchronised.
   Returns 0, or -1 with errno set. */
int cx_codemem_protect(uintptr_t at, size_t size, unsigned final);

/* After a failed load: close this thread's write window if one is open. */
void cx_codemem_abort(void);

#endif
