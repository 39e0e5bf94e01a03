/* cosmoext runtime loader.

   Order of work: read and validate everything (file header, image table,
   SHA-256, image header, every table entry) -> resolve imports -> choose a
   base address that satisfies the image's reach requirements -> map
   segments (file-backed where possible) -> apply fixups while the touched
   segments are RW -> final protections (RX / R / RW) -> register TLS and
   unwind info -> run .init_array.  Any failure before .init_array unmaps
   the whole reservation.  No mapping is ever writable and executable. */
#define _GNU_SOURCE 1
#include "cxload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cxformat.h"
#include "cxsha256.h"

_Static_assert(sizeof(struct cx_file_hdr) == CX_FILE_HDR_SIZE, "file header");
_Static_assert(sizeof(struct cx_image_ent) == CX_IMAGE_ENT_SIZE, "image entry");
_Static_assert(sizeof(struct cx_image_hdr) == CX_IMAGE_HDR_SIZE, "image header");
_Static_assert(sizeof(struct cx_segment) == CX_SEGMENT_SIZE, "segment");
_Static_assert(sizeof(struct cx_import) == CX_IMPORT_SIZE, "import");
_Static_assert(sizeof(struct cx_fixup) == CX_FIXUP_SIZE, "fixup");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cosmoext images are little-endian; big-endian hosts are not supported"
#endif

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

static struct cx_image *g_images;
/* Full-image SHA-256 check at load: off by default (pip checks RECORD hashes
   at install; 'cosmoext inspect' checks them); the structural validation
   below is what keeps a malformed file from doing harm, and it always runs. */
int cx_verify_digests;
static struct cx_counters g_count;

struct cx_image *cx_images(void) {
  return __atomic_load_n(&g_images, __ATOMIC_ACQUIRE);
}

void cx_get_counters(struct cx_counters *c) { *c = g_count; }

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

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One error format: the caller prefixes "cannot load PATH: ". */
static int fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

/* Overflow-safe "[off, off+len) lies within [0, size)". */
static int in_bounds(uint64_t off, uint64_t len, uint64_t size) {
  return off <= size && len <= size - off;
}

static int is_ident(const char *s, size_t max) {
  size_t i = 0;
  for (; i < max && s[i]; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
          (c >= '0' && c <= '9' && i > 0)))
      return 0;
  }
  return i > 0 && i < max;
}

static int fixed_str_eq(const char field[16], const char *want) {
  size_t n = strlen(want);
  if (n >= 16 || memchr(field, 0, 16) == NULL) return 0;
  return memcmp(field, want, n) == 0 && field[n] == 0;
}

static void fixed_str_copy(char *dst, const char field[16]) {
  size_t i = 0;
  for (; i < 15 && field[i] >= 0x20 && field[i] < 0x7f; i++) dst[i] = field[i];
  dst[i] = 0;
}

/* ---- fixup kinds: width and which symbols they accept ------------------ */

static unsigned fx_width(uint32_t kind, unsigned machine) {
  switch (kind) {
    case CX_FX_ABS64: case CX_FX_PC64: case CX_FX_TPOFF64: case CX_FX_DTPMOD64:
      return 8;
    case CX_FX_ABS32: case CX_FX_ABS32S: case CX_FX_PC32: case CX_FX_TPOFF32:
      return 4;
    default:
      break;
  }
  if (machine == CX_EM_AARCH64 && kind >= CX_FX_A64_ADRP && kind <= CX_FX_A64_MOVW_G3)
    return 4;
  if (machine == CX_EM_AARCH64 && kind == CX_FX_A64_TLSDESC) return 16;
  return 0;
}

static int fx_is_tls(uint32_t kind) {
  return kind == CX_FX_TPOFF64 || kind == CX_FX_TPOFF32 || kind == CX_FX_DTPMOD64 ||
         kind == CX_FX_A64_TLSDESC;
}

static uint32_t fx_requirement(uint32_t kind, uint32_t sym) {
  int host = sym != CX_SYM_BASE && sym != CX_SYM_NONE;
  switch (kind) {
    case CX_FX_PC32: case CX_FX_A64_ADRP:
      return host ? CX_F_NEAR_HOST : 0;
    case CX_FX_ABS32: case CX_FX_ABS32S:
      return host ? CX_F_LOW_HOST : CX_F_LOW_IMAGE;
    case CX_FX_TPOFF32: case CX_FX_TPOFF64:
      return CX_F_STATIC_TLS;
    case CX_FX_DTPMOD64: case CX_FX_A64_TLSDESC:
      return CX_F_DYNAMIC_TLS;
    default:
      return 0;
  }
}

/* ---- the load context ---------------------------------------------------- */

struct ctx {
  const char *path;
  const char *want_name; /* module the caller imports; NULL: any */
  char *err;
  size_t errlen;
  const struct cx_host *host;
  int fd;
  const unsigned char *file; /* read-only view of the whole file */
  size_t file_size;
  uint64_t img_off; /* image offset in file */
  const unsigned char *img;
  uint64_t img_size;
  struct cx_image_hdr h;
  struct cx_segment seg[CX_MAX_SEGMENTS];
  unsigned seg_has_fixups[CX_MAX_SEGMENTS];
  const void **imp_addr;
  const char *strtab;
  uintptr_t base;
  size_t page;
  intptr_t tls_tpoff; /* static TLS block offset from the thread pointer */
  size_t tls_module;
  size_t tls_used_before; /* static reserve watermark, restored on failure */
  size_t tls_start;       /* the image's block, from the reserve's start */
  int tls_seeded;         /* its template bytes were written: never reuse it */
};

static const char *str_at(struct ctx *c, uint32_t off) {
  return off < c->h.str_size ? c->strtab + off : NULL;
}

static int validate_file(struct ctx *c) {
  struct cx_file_hdr fh;
  unsigned machine = cx_machine();
  if (c->file_size < CX_FILE_HDR_SIZE)
    return fail(c->err, c->errlen, "file is %zu bytes, shorter than the %d-byte header (truncated?)",
                c->file_size, CX_FILE_HDR_SIZE);
  memcpy(&fh, c->file, sizeof fh);
  if (memcmp(fh.magic, CX_MAGIC, 8) != 0)
    return fail(c->err, c->errlen, "not a .cosmoext file (bad magic)");
  if (fh.version_major != CX_VERSION_MAJOR)
    return fail(c->err, c->errlen, "format version %u is not supported by this loader (version %d)",
                fh.version_major, CX_VERSION_MAJOR);
  if (fh.header_size != CX_FILE_HDR_SIZE || fh.entry_size != CX_IMAGE_ENT_SIZE)
    return fail(c->err, c->errlen, "bad file header (header or entry size)");
  if (fh.file_size != c->file_size)
    return fail(c->err, c->errlen, "file is %zu bytes but its header says %llu (truncated or padded)",
                c->file_size, (unsigned long long)fh.file_size);
  if (fh.image_count < 1 || fh.image_count > CX_MAX_IMAGES)
    return fail(c->err, c->errlen, "bad image count %u", fh.image_count);
  if (fh.table_offset < CX_FILE_HDR_SIZE ||
      !in_bounds(fh.table_offset, (uint64_t)fh.image_count * CX_IMAGE_ENT_SIZE, c->file_size))
    return fail(c->err, c->errlen, "image table out of bounds");
  char have[64] = "";
  int found = -1;
  for (uint32_t i = 0; i < fh.image_count; i++) {
    struct cx_image_ent e;
    memcpy(&e, c->file + fh.table_offset + (uint64_t)i * CX_IMAGE_ENT_SIZE, sizeof e);
    if (e.offset % CX_ALIGN || e.offset == 0 || !in_bounds(e.offset, e.size, c->file_size) ||
        e.size < CX_IMAGE_HDR_SIZE)
      return fail(c->err, c->errlen, "image %u (%s) out of bounds or misaligned", i,
                  cx_machine_name(e.machine));
    size_t len = strlen(have);
    snprintf(have + len, sizeof have - len, "%s%s", len ? ", " : "", cx_machine_name(e.machine));
    if (e.machine == machine && found < 0) {
      found = (int)i;
      c->img_off = e.offset;
      c->img_size = e.size;
      c->img = c->file + e.offset;
      uint8_t digest[32];
      if (cx_verify_digests) cx_sha256(c->img, (size_t)e.size, digest);
      if (cx_verify_digests && memcmp(digest, e.sha256, 32) != 0)
        return fail(c->err, c->errlen, "%s image is corrupt (SHA-256 mismatch)",
                    cx_machine_name(machine));
    }
  }
  if (found < 0)
    return fail(c->err, c->errlen, "no image for this machine (%s); the file has: %s",
                cx_machine_name(machine), have);
  return 0;
}

static int validate_image(struct ctx *c) {
  struct cx_image_hdr *h = &c->h;
  unsigned machine = cx_machine();
  memcpy(h, c->img, sizeof *h);
  if (memcmp(h->magic, CX_IMAGE_MAGIC, 4) != 0 || h->machine != machine ||
      h->header_size != CX_IMAGE_HDR_SIZE || h->align != CX_ALIGN)
    return fail(c->err, c->errlen, "bad image header");
  char got[16];
  if (!fixed_str_eq(h->target, c->host->target)) {
    fixed_str_copy(got, h->target);
    return fail(c->err, c->errlen, "built for target '%s', this interpreter is '%s'", got,
                c->host->target);
  }
  if (!fixed_str_eq(h->python_abi, c->host->python_abi)) {
    fixed_str_copy(got, h->python_abi);
    return fail(c->err, c->errlen, "built for Python ABI '%s', this interpreter is '%s'", got,
                c->host->python_abi);
  }
  if (h->vsize == 0 || h->vsize % CX_ALIGN || h->vsize > CX_MAX_VSIZE)
    return fail(c->err, c->errlen, "bad image size %llu", (unsigned long long)h->vsize);
  /* Tables and string table. */
  if (h->str_size == 0 || h->str_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->str_off, h->str_size, c->img_size) ||
      c->img[h->str_off + h->str_size - 1] != 0)
    return fail(c->err, c->errlen, "string table out of bounds or unterminated");
  c->strtab = (const char *)c->img + h->str_off;
  if (h->seg_count < 1 || h->seg_count > CX_MAX_SEGMENTS || h->seg_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->seg_off, (uint64_t)h->seg_count * CX_SEGMENT_SIZE, c->img_size))
    return fail(c->err, c->errlen, "segment table out of bounds");
  if (h->imp_count > CX_MAX_IMPORTS || h->imp_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->imp_off, (uint64_t)h->imp_count * CX_IMPORT_SIZE, c->img_size))
    return fail(c->err, c->errlen, "import table out of bounds");
  if (h->fix_count > CX_MAX_FIXUPS || h->fix_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->fix_off, (uint64_t)h->fix_count * CX_FIXUP_SIZE, c->img_size))
    return fail(c->err, c->errlen, "fixup table out of bounds");
  const char *name = str_at(c, h->name_off);
  if (!name || !is_ident(name, 64))
    return fail(c->err, c->errlen, "bad module name in image header");
  /* Segments: aligned, ordered, disjoint, inside vsize and the file. */
  uint64_t prev_end = 0;
  for (uint32_t i = 0; i < h->seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    memcpy(s, c->img + h->seg_off + (uint64_t)i * CX_SEGMENT_SIZE, sizeof *s);
    static const uint32_t want_prot[] = {0, CX_PROT_R | CX_PROT_X, CX_PROT_R, CX_PROT_R,
                                         CX_PROT_R | CX_PROT_W};
    if (s->kind < CX_SEG_TEXT || s->kind > CX_SEG_DATA || s->prot != want_prot[s->kind])
      return fail(c->err, c->errlen, "segment %u: bad kind or protection", i);
    if (s->vaddr % CX_ALIGN || s->vaddr < prev_end || s->memsz == 0 ||
        !in_bounds(s->vaddr, s->memsz, h->vsize) || s->filesz > s->memsz)
      return fail(c->err, c->errlen, "segment %u: bad address range", i);
    if (s->filesz && (s->offset % CX_ALIGN || s->offset == 0 ||
                      !in_bounds(s->offset, s->filesz, c->img_size)))
      return fail(c->err, c->errlen, "segment %u: file range out of bounds", i);
    prev_end = s->vaddr + s->memsz;
  }
  /* Refuse the wrong module here, while nothing is mapped and no initialiser has run. */
  if (c->want_name && strcmp(name, c->want_name) != 0)
    return fail(c->err, c->errlen, "it holds module '%s', not '%s'", name, c->want_name);
  return 0;
}

/* Index of the segment holding [va, va+len), or -1. */
static int seg_of(struct ctx *c, uint64_t va, uint64_t len) {
  for (uint32_t i = 0; i < c->h.seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    if (va >= s->vaddr && in_bounds(va - s->vaddr, len, s->memsz)) return (int)i;
  }
  return -1;
}

static int validate_ranges(struct ctx *c) {
  struct cx_image_hdr *h = &c->h;
  int s = seg_of(c, h->entry, 1);
  if (s < 0 || !(c->seg[s].prot & CX_PROT_X))
    return fail(c->err, c->errlen, "module entry point PyInit_%s is missing or not in code",
                c->strtab + h->name_off);
  if (h->init_count > CX_MAX_INIT || h->fini_count > CX_MAX_INIT)
    return fail(c->err, c->errlen, "too many initialisers");
  if (h->init_count && (h->init_vaddr % 8 || seg_of(c, h->init_vaddr, 8ull * h->init_count) < 0))
    return fail(c->err, c->errlen, ".init_array out of bounds");
  if (h->fini_count && (h->fini_vaddr % 8 || seg_of(c, h->fini_vaddr, 8ull * h->fini_count) < 0))
    return fail(c->err, c->errlen, ".fini_array out of bounds");
  if (h->eh_size && seg_of(c, h->eh_vaddr, h->eh_size) < 0)
    return fail(c->err, c->errlen, ".eh_frame out of bounds");
  if (h->ehhdr_size && (h->ehhdr_size < 8 || seg_of(c, h->ehhdr_vaddr, h->ehhdr_size) < 0))
    return fail(c->err, c->errlen, ".eh_frame_hdr out of bounds");
  if (h->tls_memsz) {
    if (h->tls_filesz > h->tls_memsz || h->tls_align == 0 || (h->tls_align & (h->tls_align - 1)) ||
        h->tls_align > 4096 || (h->tls_filesz && seg_of(c, h->tls_vaddr, h->tls_filesz) < 0))
      return fail(c->err, c->errlen, "bad thread-local storage template");
  } else if (h->tls_filesz) {
    return fail(c->err, c->errlen, "bad thread-local storage template");
  }
  return 0;
}

static int resolve_imports(struct ctx *c) {
  struct cx_image_hdr *h = &c->h;
  size_t missing = 0, len = 0;
  char list[640] = "";
  c->imp_addr = calloc(h->imp_count ? h->imp_count : 1, sizeof *c->imp_addr);
  if (!c->imp_addr) return fail(c->err, c->errlen, "out of memory");
  for (uint32_t i = 0; i < h->imp_count; i++) {
    struct cx_import im;
    memcpy(&im, c->img + h->imp_off + (uint64_t)i * CX_IMPORT_SIZE, sizeof im);
    const char *name = str_at(c, im.name_off);
    if (!name || !*name || im.flags & ~CX_IMP_WEAK || cx_gnu_hash_str(name) != im.hash)
      return fail(c->err, c->errlen, "import %u: bad entry", i);
    c->imp_addr[i] = c->host->resolve(name, im.hash);
    if (!c->imp_addr[i] && !(im.flags & CX_IMP_WEAK)) {
      if (len + strlen(name) + 8 < sizeof list) {
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", missing ? ", " : "", name);
      } else if (len + 5 < sizeof list && !strstr(list, ", ...")) {
        len += (size_t)snprintf(list + len, sizeof list - len, ", ...");
      }
      missing++;
    }
  }
  if (missing)
    return fail(c->err, c->errlen,
                "%zu undefined symbol%s not exported by this interpreter: %s", missing,
                missing == 1 ? "" : "s", list);
  return 0;
}

static int read_fixup(struct ctx *c, uint32_t i, struct cx_fixup *f) {
  memcpy(f, c->img + c->h.fix_off + (uint64_t)i * CX_FIXUP_SIZE, sizeof *f);
  return 0;
}

/* Validate every fixup and derive the placement requirements from them. */
static int validate_fixups(struct ctx *c, uint32_t *req) {
  unsigned machine = cx_machine();
  *req = 0;
  for (uint32_t i = 0; i < c->h.fix_count; i++) {
    struct cx_fixup f;
    read_fixup(c, i, &f);
    unsigned w = fx_width(f.kind, machine);
    if (!w) return fail(c->err, c->errlen, "fixup %u: unknown kind %u", i, f.kind);
    int s = seg_of(c, f.vaddr, w);
    if (s < 0 || f.vaddr + w > c->seg[s].vaddr + c->seg[s].filesz)
      return fail(c->err, c->errlen, "fixup %u: target %#llx outside the image's data", i,
                  (unsigned long long)f.vaddr);
    if (fx_is_tls(f.kind) ? f.sym != CX_SYM_NONE
                          : (f.sym != CX_SYM_BASE && f.sym >= c->h.imp_count))
      return fail(c->err, c->errlen, "fixup %u: bad symbol index %u", i, f.sym);
    if (fx_is_tls(f.kind) && !c->h.tls_memsz)
      return fail(c->err, c->errlen, "fixup %u: TLS fixup in an image without TLS", i);
    c->seg_has_fixups[s] = 1;
    *req |= fx_requirement(f.kind, f.sym);
  }
  if ((c->h.flags & CX_F_REQUIREMENTS) != *req)
    return fail(c->err, c->errlen, "image header flags %#x disagree with its fixups (%#x)",
                c->h.flags & CX_F_REQUIREMENTS, *req);
  return 0;
}

/* ---- placement ----------------------------------------------------------- */

/* Window [lo, hi] of acceptable base addresses. */
static int placement_window(struct ctx *c, uint32_t req, uint64_t *lo, uint64_t *hi,
                            const char **why) {
  *lo = 0x10000;
  *hi = UINT64_MAX - c->h.vsize;
  *why = NULL;
  const int64_t reach = (int64_t)1 << 31;
  if (req & CX_F_LOW_IMAGE) {
    uint64_t lim = 0x100000000ull; /* abs32 zero-extends: 4 GiB; abs32s: 2 GiB */
    for (uint32_t i = 0; i < c->h.fix_count; i++) {
      struct cx_fixup f;
      read_fixup(c, i, &f);
      if (f.sym == CX_SYM_BASE && f.kind == CX_FX_ABS32S) lim = 0x80000000ull;
    }
    if (lim < c->h.vsize) return -1;
    if (*hi > lim - c->h.vsize) *hi = lim - c->h.vsize;
    *why = "32-bit absolute addresses of its own code and data need it in the low 2-4 GiB";
  }
  if (req & CX_F_NEAR_HOST) {
    uint64_t range = (cx_machine() == CX_EM_AARCH64 ? 2 : 1) * (uint64_t)reach;
    for (uint32_t i = 0; i < c->h.fix_count; i++) {
      struct cx_fixup f;
      read_fixup(c, i, &f);
      if ((f.kind != CX_FX_PC32 && f.kind != CX_FX_A64_ADRP) || f.sym >= c->h.imp_count) continue;
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

static void *try_reserve(uint64_t want, size_t size) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
#ifdef MAP_FIXED_NOREPLACE
  if (want) flags |= MAP_FIXED_NOREPLACE;
#endif
  void *p = mmap((void *)(uintptr_t)want, size, PROT_NONE, flags, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (want && (uintptr_t)p != want) { /* kernel treated the hint as a hint */
    munmap(p, size);
    return NULL;
  }
  return p;
}

/* Reserve vsize bytes of address space at a base satisfying req. */
static int reserve(struct ctx *c, uint32_t req) {
  size_t size = (size_t)c->h.vsize;
  if (!(req & (CX_F_NEAR_HOST | CX_F_LOW_IMAGE))) {
    void *p = try_reserve(0, size);
    if (!p) return fail(c->err, c->errlen, "cannot reserve %zu bytes of address space", size);
    c->base = (uintptr_t)p;
    return 0;
  }
  uint64_t lo, hi;
  const char *why;
  if (placement_window(c, req, &lo, &hi, &why) < 0)
    return fail(c->err, c->errlen,
                "non-PIC image cannot be placed: %s, and no address satisfies that in this "
                "process (the host's symbols are too far apart or too high); rebuild with --pic, "
                "or load it in an interpreter made by 'cosmoext embed'", why);
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
    void *p = try_reserve(cand, size);
    if (p) {
      c->base = (uintptr_t)p;
      return 0;
    }
  }
  return fail(c->err, c->errlen,
              "non-PIC image cannot be placed: %s, and no free address range of %zu bytes was "
              "found there; rebuild with --pic, or load it in an interpreter made by "
              "'cosmoext embed'", why, size);
}

static size_t page_up(struct ctx *c, uint64_t x) {
  return (size_t)((x + c->page - 1) & ~(uint64_t)(c->page - 1));
}

static int to_prot(uint32_t p) {
  return ((p & CX_PROT_R) ? PROT_READ : 0) | ((p & CX_PROT_W) ? PROT_WRITE : 0) |
         ((p & CX_PROT_X) ? PROT_EXEC : 0);
}

/* Map segments.  A segment that needs writing at load time (fixups, or a
   zeroed tail after file data) is mapped RW first and never executable. */
static int map_segments(struct ctx *c) {
  for (uint32_t i = 0; i < c->h.seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    uintptr_t at = c->base + (uintptr_t)s->vaddr;
    size_t fpart = page_up(c, s->filesz), total = page_up(c, s->memsz);
    int tail = s->filesz % c->page != 0 && s->memsz > s->filesz;
    int writable_now = c->seg_has_fixups[i] || tail || (s->prot & CX_PROT_W);
    int prot = writable_now ? PROT_READ | PROT_WRITE : to_prot(s->prot);
    if (fpart) {
      void *p = mmap((void *)at, fpart, prot, MAP_PRIVATE | MAP_FIXED, c->fd,
                     (off_t)(c->img_off + s->offset));
      if (p == MAP_FAILED)
        return fail(c->err, c->errlen, "mmap of segment %u failed: %s", i, strerror(errno));
      if (writable_now && s->filesz % c->page) /* bytes after its data in the last page */
        memset((void *)(at + s->filesz), 0, fpart - s->filesz);
    }
    if (total > fpart) {
      void *p = mmap((void *)(at + fpart), total - fpart, prot,
                     MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED)
        return fail(c->err, c->errlen, "mmap of segment %u failed: %s", i, strerror(errno));
    }
  }
  return 0;
}

static int put32(struct ctx *c, uint32_t i, unsigned char *p, int64_t v, int sign,
                 const char *what) {
  if (sign ? (v < INT32_MIN || v > INT32_MAX) : (v < 0 || v > (int64_t)UINT32_MAX)) {
    struct cx_fixup f;
    read_fixup(c, i, &f);
    const char *name = "the image itself";
    if (f.sym < c->h.imp_count) {
      struct cx_import im;
      memcpy(&im, c->img + c->h.imp_off + (uint64_t)f.sym * CX_IMPORT_SIZE, sizeof im);
      name = c->strtab + im.name_off;
    }
    return fail(c->err, c->errlen,
                "non-PIC image: %s reference to %s does not fit 32 bits at this address "
                "(value %#llx); rebuild with --pic, or load it in an interpreter made by "
                "'cosmoext embed'", what, name, (unsigned long long)v);
  }
  uint32_t u = (uint32_t)v;
  memcpy(p, &u, 4);
  return 0;
}

static int apply_fixups(struct ctx *c) {
  for (uint32_t i = 0; i < c->h.fix_count; i++) {
    struct cx_fixup f;
    read_fixup(c, i, &f);
    unsigned char *p = (unsigned char *)(c->base + (uintptr_t)f.vaddr);
    uint64_t S = f.sym == CX_SYM_BASE ? c->base
               : f.sym == CX_SYM_NONE ? 0
                                      : (uint64_t)(uintptr_t)c->imp_addr[f.sym];
    uint64_t P = (uint64_t)(uintptr_t)p;
    uint64_t v64 = S + (uint64_t)f.addend;
    switch (f.kind) {
      case CX_FX_ABS64: memcpy(p, &v64, 8); break;
      case CX_FX_ABS32:
        if (put32(c, i, p, (int64_t)v64, 0, "32-bit absolute")) return -1;
        break;
      case CX_FX_ABS32S:
        if (put32(c, i, p, (int64_t)v64, 1, "32-bit absolute")) return -1;
        break;
      case CX_FX_PC32:
        if (put32(c, i, p, (int64_t)(v64 - P), 1, "PC-relative")) return -1;
        break;
      case CX_FX_PC64: { uint64_t d = v64 - P; memcpy(p, &d, 8); break; }
      case CX_FX_TPOFF64: {
        int64_t t = (int64_t)c->tls_tpoff + f.addend;
        memcpy(p, &t, 8);
        break;
      }
      case CX_FX_TPOFF32:
        if (put32(c, i, p, (int64_t)c->tls_tpoff + f.addend, 1, "thread-pointer-relative"))
          return -1;
        break;
      case CX_FX_DTPMOD64: { uint64_t m = c->tls_module; memcpy(p, &m, 8); break; }
      default:
        return fail(c->err, c->errlen, "fixup %u: kind %u is not supported on this machine", i,
                    f.kind);
    }
  }
  return 0;
}

static int protect_segments(struct ctx *c) {
  for (uint32_t i = 0; i < c->h.seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    if (s->prot & CX_PROT_W) continue; /* data stays RW */
    int tail = s->filesz % c->page != 0 && s->memsz > s->filesz;
    if (!c->seg_has_fixups[i] && !tail) continue; /* already mapped with final protection */
    if (mprotect((void *)(c->base + (uintptr_t)s->vaddr), page_up(c, s->memsz),
                 to_prot(s->prot)) != 0)
      return fail(c->err, c->errlen, "mprotect of segment %u failed: %s", i, strerror(errno));
#if defined(__aarch64__)
    if (s->prot & CX_PROT_X)
      __builtin___clear_cache((char *)(c->base + s->vaddr), (char *)(c->base + s->vaddr + s->memsz));
#endif
  }
  return 0;
}

/* Static TLS: carve the image's block out of the host's reserve. */
static int setup_tls(struct ctx *c, uint32_t req) {
  struct cx_image_hdr *h = &c->h;
  if (!h->tls_memsz) return 0;
  if (req & CX_F_STATIC_TLS) {
    if (!cx_static_tls)
      return fail(c->err, c->errlen,
                  "image uses static (local-exec/initial-exec) thread-local storage, which "
                  "needs the static TLS reserve of an interpreter made by 'cosmoext embed'; "
                  "this interpreter has none: rebuild with --pic");
    if (h->tls_filesz && cx_static_tls_can_seed(c->err, c->errlen) != 0) return -1;
    size_t align = h->tls_align > 64 ? 0 : h->tls_align;
    size_t start = align ? (cx_static_tls->used + align - 1) & ~(align - 1) : 0;
    if (!align || start + h->tls_memsz > cx_static_tls->size)
      return fail(c->err, c->errlen,
                  "static TLS reserve exhausted (%zu of %zu bytes used, image needs %u aligned "
                  "to %u)", cx_static_tls->used, cx_static_tls->size, h->tls_memsz, h->tls_align);
    c->tls_used_before = cx_static_tls->used;
    c->tls_tpoff = cx_static_tls->tpoff + (intptr_t)start;
    c->tls_start = start;
    cx_static_tls->used = start + h->tls_memsz;
  }
  return 0;
}

static void unmap_all(struct ctx *c) {
  if (c->base) {
    munmap((void *)c->base, (size_t)c->h.vsize);
    c->base = 0;
  }
}

struct cx_image *cx_load(const char *path, const char *want_name, const struct cx_host *host,
                         char *err, size_t errlen, struct cx_load_stats *st) {
  struct ctx c;
  struct stat sb;
  struct cx_image *im = NULL;
  uint32_t req = 0;
  uint64_t t0 = now_ns(), t1, t2, t3;
  memset(&c, 0, sizeof c);
  memset(st, 0, sizeof *st);
  c.path = path;
  c.want_name = want_name;
  c.err = err;
  c.errlen = errlen;
  c.host = host;
  c.fd = -1;
  long pg = sysconf(_SC_PAGESIZE);
  c.page = pg > 0 ? (size_t)pg : 4096;
  if (c.page > CX_ALIGN) {
    fail(err, errlen, "page size %zu exceeds the format's 64 KiB alignment", c.page);
    goto out;
  }
  /* O_NONBLOCK: a FIFO or device must be refused below, not block the import. */
  c.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (c.fd < 0 || fstat(c.fd, &sb) != 0) {
    fail(err, errlen, "%s", strerror(errno));
    goto out;
  }
  if (!S_ISREG(sb.st_mode) || sb.st_size <= 0 || (uint64_t)sb.st_size > (4ull << 30)) {
    fail(err, errlen, "not a regular file of plausible size");
    goto out;
  }
  c.file_size = (size_t)sb.st_size;
  void *view = mmap(NULL, c.file_size, PROT_READ, MAP_PRIVATE, c.fd, 0);
  if (view == MAP_FAILED) {
    fail(err, errlen, "cannot map file: %s", strerror(errno));
    goto out;
  }
  c.file = view;
  if (validate_file(&c) || validate_image(&c) || validate_ranges(&c) || resolve_imports(&c) ||
      validate_fixups(&c, &req))
    goto out;
  t1 = now_ns();
  st->validate_ns = t1 - t0;
  im = calloc(1, sizeof *im);
  if (!im || !(im->path = strdup(path))) {
    fail(err, errlen, "out of memory");
    goto out;
  }
  if (setup_tls(&c, req) || reserve(&c, req) || map_segments(&c)) goto out;
  t2 = now_ns();
  st->map_ns = t2 - t1;
  if (c.h.tls_memsz && (req & CX_F_DYNAMIC_TLS)) {
    /* module ids are handed out before fixups so DTPMOD slots can hold them;
       the template pointer refers to mapped (relocated) memory. */
    c.tls_module = cx_tls_register((const void *)(c.base + (uintptr_t)c.h.tls_vaddr),
                                   c.h.tls_filesz, c.h.tls_memsz, c.h.tls_align);
    if (!c.tls_module) {
      fail(err, errlen, "too many images with thread-local storage");
      goto out;
    }
  }
  if (apply_fixups(&c) || protect_segments(&c)) goto out;
  if ((req & CX_F_STATIC_TLS) && c.h.tls_filesz &&
      cx_static_tls_seed(c.tls_start, (const void *)(c.base + (uintptr_t)c.h.tls_vaddr),
                         c.h.tls_filesz, err, errlen) != 0)
    goto out;
  c.tls_seeded = (req & CX_F_STATIC_TLS) && c.h.tls_filesz;
  t3 = now_ns();
  st->fixup_ns = t3 - t2;
  st->fixups = c.h.fix_count;
  st->imports = c.h.imp_count;

  /* Success: publish the image, then run its initialisers. */
  memcpy(im->name, c.strtab + c.h.name_off, strlen(c.strtab + c.h.name_off) + 1);
  im->base = c.base;
  im->vsize = (size_t)c.h.vsize;
  im->entry = c.base + (uintptr_t)c.h.entry;
  im->flags = c.h.flags;
  im->nseg = c.h.seg_count;
  for (uint32_t i = 0; i < c.h.seg_count; i++) {
    im->seg[i].start = c.base + (uintptr_t)c.seg[i].vaddr;
    im->seg[i].size = (size_t)c.seg[i].memsz;
    im->seg[i].prot = c.seg[i].prot;
  }
  im->ehhdr = c.h.ehhdr_size ? c.base + (uintptr_t)c.h.ehhdr_vaddr : 0;
  im->ehhdr_size = c.h.ehhdr_size;
  im->eh = c.h.eh_size ? c.base + (uintptr_t)c.h.eh_vaddr : 0;
  im->eh_size = (size_t)c.h.eh_size;
  im->fini = c.h.fini_count ? c.base + (uintptr_t)c.h.fini_vaddr : 0;
  im->fini_count = c.h.fini_count;
  im->tls_module = c.tls_module;
  im->dev = (uint64_t)sb.st_dev;
  im->ino = (uint64_t)sb.st_ino;
  im->size = (uint64_t)sb.st_size;
  im->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
  /* Initialisers must point into this image's code: check all before running any. */
  const uintptr_t *init = (const uintptr_t *)(c.base + (uintptr_t)c.h.init_vaddr);
  for (uint32_t i = 0; i < c.h.init_count; i++) {
    int ok = 0;
    for (uint32_t s = 0; s < c.h.seg_count; s++)
      if ((c.seg[s].prot & CX_PROT_X) && init[i] >= im->seg[s].start &&
          init[i] < im->seg[s].start + im->seg[s].size)
        ok = 1;
    if (!ok) {
      fail(err, errlen, ".init_array entry %u does not point into the image's code", i);
      goto out;
    }
  }
  im->next = g_images;
  __atomic_store_n(&g_images, im, __ATOMIC_RELEASE);
  g_count.loaded++;
  g_count.live_bytes += im->vsize;
  g_count.live_regions++;
  c.base = 0; /* owned by the image now */
  for (uint32_t i = 0; i < c.h.init_count; i++)
    ((void (*)(int, char **, char **))init[i])(0, NULL, NULL);
  st->init_ns = now_ns() - t3;
  munmap((void *)c.file, c.file_size);
  close(c.fd);
  free(c.imp_addr);
  return im;

out:
  g_count.failed++;
  if (c.tls_module) cx_tls_unregister(c.tls_module);
  if (c.tls_tpoff && !c.tls_seeded) cx_static_tls->used = c.tls_used_before;
  unmap_all(&c);
  if (c.file) munmap((void *)c.file, c.file_size);
  if (c.fd >= 0) close(c.fd);
  free(c.imp_addr);
  if (im) free(im->path);
  free(im);
  return NULL;
}
