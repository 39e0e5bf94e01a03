/* Placement and mapping: the base addresses a non-PIC image can live at,
   the mapping, segments copied in, then given their final protection.
   Memory itself goes through cxcodemem.c, so nothing is ever W+X.

   Where plain mprotect works (cx_codemem_one_map), the image is one
   read-write anonymous mapping up to its last segment's last page: one
   mmap, a copy per segment, then one mprotect per run of pages with the
   same final protection.  The pages between two segments (vaddrs are
   64 KiB-aligned, so on 4 KiB pages there are gaps) get what both
   neighbours allow, less execute: readable zeros, never writable unless
   both are, never executable.  Elsewhere (MAP_JIT, Windows) the image is a
   PROT_NONE reservation of vsize with each segment mapped into it. */
#define _GNU_SOURCE 1
#include "cxplace.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "cxcodemem.h"
#include "cxformat.h"

_Static_assert(CX_PROT_R == CX_MEM_R && CX_PROT_W == CX_MEM_W && CX_PROT_X == CX_MEM_X, "prot");

/* Window [lo, hi] of acceptable base addresses. */
static int placement_window(struct cx_ctx *c, uint32_t req, uint64_t *lo, uint64_t *hi,
                            const char **why) {
  *lo = 0x10000;
  *hi = UINT64_MAX - c->h.vsize;
  *why = NULL;
  const int64_t reach = (int64_t)1 << 31;
  if (req & CX_F_LOW_IMAGE) {
    uint64_t lim = 0x100000000ull; /* abs32 zero-extends: 4 GiB; abs32s: 2 GiB */
    for (uint32_t i = 0; i < c->h.fix_count; i++) {
      struct cx_fixup f;
      cx_read_fixup(c, i, &f);
      if (f.sym == CX_SYM_BASE && f.kind == CX_FX_ABS32S) lim = 0x80000000ull;
    }
    if (lim < c->h.vsize) return -1;
    if (*hi > lim - c->h.vsize) *hi = lim - c->h.vsize;
    *why = "32-bit absolute addresses of its own code and data need it in the low 2-4 GiB";
  }
  if (req & CX_F_NEAR_HOST) {
    for (uint32_t i = 0; i < c->h.fix_count; i++) {
      struct cx_fixup f;
      cx_read_fixup(c, i, &f);
      if ((f.kind != CX_FX_PC32 && f.kind != CX_FX_A64_ADRP) || f.sym >= c->h.imp_count) continue;
      /* ADRP of an absent weak symbol becomes a MOVZ: no reach needed */
      if (f.kind == CX_FX_A64_ADRP && !c->imp_addr[f.sym]) continue;
      /* PC32: +-2 GiB; ADRP: +-4 GiB between pages, so one page less for addresses */
      uint64_t range = f.kind == CX_FX_PC32 ? (uint64_t)reach : 2 * (uint64_t)reach - 4096;
      uint64_t s = (uint64_t)(uintptr_t)c->imp_addr[f.sym] + (uint64_t)f.addend;
      /* need |s - (base + vaddr)| < range, conservatively for the whole image */
      uint64_t a = s > range ? s - range + c->h.vsize : 0;
      uint64_t b = s + range > s ? s + range - c->h.vsize : UINT64_MAX;
      if (a > *lo) *lo = a;
      if (b < *hi) *hi = b;
    }
    *why = *why ? "it needs both the low 2 GiB and PC-relative reach of the host's symbols"
                : "PC-relative references to the host's symbols need it within reach of them";
  }
  return *lo <= *hi ? 0 : -1;
}

static size_t page_up(struct cx_ctx *c, uint64_t x) {
  return (size_t)((x + c->page - 1) & ~(uint64_t)(c->page - 1));
}

/* Address space for the image (cxcodemem.c): inaccessible, except that on
   macOS ARM64 its code ranges are created as MAP_JIT memory right away. */
static void *try_reserve(struct cx_ctx *c, uint64_t want, size_t size) {
  size_t align = c->h.align > c->page ? (size_t)c->h.align : 0;
  if (c->one_map) {
    /* A large image is populated in one go: copying its segments in would
       otherwise take a page fault per page (most of a C++ image's load
       time); not when the mapping is mostly bss or gaps. */
    uint64_t fill = 0;
    for (uint32_t i = 0; i < c->h.seg_count; i++) fill += page_up(c, c->seg[i].filesz);
    int populate = fill >= 16 * (uint64_t)c->page && 2 * fill >= size;
    return cx_codemem_map_rw((uintptr_t)want, size, align, populate);
  }
  struct cx_code_range code[CX_MAX_SEGMENTS];
  unsigned n = 0;
  for (uint32_t i = 0; i < c->h.seg_count; i++)
    if (c->seg[i].prot & CX_PROT_X)
      code[n++] = (struct cx_code_range){(size_t)c->seg[i].vaddr, page_up(c, c->seg[i].memsz)};
  return cx_codemem_reserve((uintptr_t)want, size, align, code, n);
}

/* Map the image at a base satisfying req and its alignment. */
int cx_reserve(struct cx_ctx *c, uint32_t req) {
  c->one_map = cx_codemem_one_map();
  if (c->one_map) {
    const struct cx_segment *last = &c->seg[c->h.seg_count - 1]; /* sorted by vaddr */
    c->map_size = page_up(c, last->vaddr + last->memsz);
  } else {
    c->map_size = (size_t)c->h.vsize;
  }
  size_t size = c->map_size;
  if (!(req & (CX_F_NEAR_HOST | CX_F_LOW_IMAGE))) {
    void *p = try_reserve(c, 0, size);
    if (!p) return cx_fail(c->err, c->errlen, "cannot reserve %zu bytes of address space", size);
    c->base = (uintptr_t)p;
    return 0;
  }
  uint64_t lo, hi;
  const char *why;
  if (placement_window(c, req, &lo, &hi, &why) < 0)
    return cx_fail(c->err, c->errlen,
                   "non-PIC image cannot be placed: %s, and no address satisfies that in this "
                   "process (the host's symbols are too far apart or too high); rebuild with "
                   "--pic, or load it in an interpreter made by 'cosmoext embed'", why);
  /* Walk candidates outwards from the middle of the window. */
  uint64_t mid = lo + (hi - lo) / 2, step = 64ull << 20;
  for (unsigned k = 0; k < 512; k++) {
    uint64_t off = (uint64_t)((k + 1) / 2) * step;
    uint64_t cand = (k & 1) ? (mid > off ? mid - off : 0) : mid + off;
    cand &= ~(uint64_t)(CX_ALIGN - 1);
    if (cand < lo || cand > hi) {
      if (off > hi - lo) break;
      continue;
    }
    void *p = try_reserve(c, cand, size);
    if (p) {
      c->base = (uintptr_t)p;
      return 0;
    }
  }
  return cx_fail(c->err, c->errlen,
                 "non-PIC image cannot be placed: %s, and no free address range of %zu bytes was "
                 "found there; rebuild with --pic, or load it in an interpreter made by "
                 "'cosmoext embed'", why, size);
}

/* Segments (cxcodemem.c): anonymous memory with the validated bytes copied
   in (the memory after them is already zero).  A segment that needs writing
   at load time (fixups) stays writable until cx_protect_segments and is
   never executable while it is: RW then RX, or a MAP_JIT write window. */
int cx_map_segments(struct cx_ctx *c) {
  for (uint32_t i = 0; i < c->h.seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    uintptr_t at = c->base + (uintptr_t)s->vaddr;
    if (c->one_map) { /* already read-write and zero */
      if (s->filesz && !c->in_place) memcpy((void *)at, c->img + s->offset, (size_t)s->filesz);
      continue;
    }
    int writable_now = c->seg_has_fixups[i] || (s->prot & CX_PROT_W);
    if (cx_codemem_map(at, page_up(c, s->memsz), (size_t)s->filesz, c->img + s->offset, s->prot,
                       writable_now) != 0)
      return cx_fail(c->err, c->errlen, "mmap of segment %u failed: %s", i, strerror(errno));
  }
  return 0;
}

/* One mapping: final protections by runs of pages (see the top of this file). */
static int protect_runs(struct cx_ctx *c) {
  const uint32_t rw = CX_PROT_R | CX_PROT_W;
  size_t run_start = 0, pos = 0;
  uint32_t run_prot = rw;
  for (uint32_t i = 0; i <= c->h.seg_count; i++) {
    /* the gap before segment i (or nothing past the last one), then segment i */
    size_t start = i < c->h.seg_count ? (size_t)c->seg[i].vaddr : c->map_size;
    size_t end = i < c->h.seg_count ? page_up(c, c->seg[i].vaddr + c->seg[i].memsz) : c->map_size;
    uint32_t prev = i ? c->seg[i - 1].prot : 0;
    uint32_t next = i < c->h.seg_count ? c->seg[i].prot : 0;
    struct { size_t lo, hi; uint32_t prot; } part[2] = {
        {pos, start, prev & next & ~CX_PROT_X}, {start, end, next}};
    for (int k = 0; k < 2; k++) {
      if (part[k].lo >= part[k].hi) continue;
      if (part[k].prot != run_prot) {
        if (run_prot != rw && pos > run_start &&
            cx_codemem_protect(c->base + run_start, part[k].lo - run_start, run_prot) != 0)
          return cx_fail(c->err, c->errlen, "mprotect of the image at +%#zx failed: %s",
                         run_start, strerror(errno));
        run_start = part[k].lo;
        run_prot = part[k].prot;
      }
      pos = part[k].hi;
    }
  }
  if (run_prot != rw && pos > run_start &&
      cx_codemem_protect(c->base + run_start, pos - run_start, run_prot) != 0)
    return cx_fail(c->err, c->errlen, "mprotect of the image at +%#zx failed: %s", run_start,
                   strerror(errno));
  return 0;
}

int cx_protect_segments(struct cx_ctx *c) {
  if (c->one_map) return protect_runs(c);
  for (uint32_t i = 0; i < c->h.seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    if (s->prot & CX_PROT_W) continue; /* data stays RW */
    if (!c->seg_has_fixups[i]) continue; /* already mapped with final protection */
    /* RX/R; for code also the instruction cache (and the MAP_JIT window) */
    if (cx_codemem_protect(c->base + (uintptr_t)s->vaddr, page_up(c, s->memsz), s->prot) != 0)
      return cx_fail(c->err, c->errlen, "mprotect of segment %u failed: %s", i, strerror(errno));
  }
  return 0;
}

void cx_unmap_all(struct cx_ctx *c) {
  cx_codemem_abort(); /* a MAP_JIT write window may still be open */
  if (c->base) {
    munmap((void *)c->base, c->map_size);
    c->base = 0;
  }
}
