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

#include "cxcodemem.h"
#include "cxformat.h"
#include "cxsha256.h"

_Static_assert(sizeof(struct cx_file_hdr) == CX_FILE_HDR_SIZE, "file header");
_Static_assert(sizeof(struct cx_image_ent) == CX_IMAGE_ENT_SIZE, "image entry");
_Static_assert(sizeof(struct cx_image_hdr) == CX_IMAGE_HDR_SIZE, "image header");
_Static_assert(sizeof(struct cx_segment) == CX_SEGMENT_SIZE, "segment");
_Static_assert(sizeof(struct cx_import) == CX_IMPORT_SIZE, "import");
_Static_assert(sizeof(struct cx_fixup) == CX_FIXUP_SIZE, "fixup");
_Static_assert(CX_PROT_R == CX_MEM_R && CX_PROT_W == CX_MEM_W && CX_PROT_X == CX_MEM_X, "prot");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cosmoext images are little-endian; big-endian hosts are not supported"
#endif

static struct cx_image *g_images;
/* Digest checks at load: 0 none (tests only), 1 the metadata digest (the
   default: header and tables, cheap), 2 also the whole image's SHA-256 (its
   code and data; pip already checks RECORD hashes at install time). */
int cx_verify_digests = 1;
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
  if (machine != CX_EM_AARCH64) return 0;
  if (kind & CX_FX_A64_CHECK) /* the modifier applies to ADD/LDST lo12 and MOVW kinds */
    return (kind & ~CX_FX_A64_CHECK) >= CX_FX_A64_ADD_LO12 &&
                   (kind & ~CX_FX_A64_CHECK) <= CX_FX_A64_MOVW_G3 ? 4 : 0;
  if (kind >= CX_FX_A64_ADRP && kind <= CX_FX_A64_MOVW_G3) return 4;
  if (kind == CX_FX_A64_ADD_HI12) return 4;
  if (kind == CX_FX_A64_TLSDESC) return 16;
  return 0;
}

static int fx_is_tls(uint32_t kind) {
  return kind == CX_FX_TPOFF64 || kind == CX_FX_TPOFF32 || kind == CX_FX_DTPMOD64 ||
         kind == CX_FX_A64_TLSDESC;
}

/* aarch64 instruction kinds that may take S = T (CX_SYM_TP, local-exec TLS). */
static int fx_takes_tp(uint32_t kind) {
  uint32_t k = kind & ~CX_FX_A64_CHECK;
  return (k >= CX_FX_A64_ADD_LO12 && k <= CX_FX_A64_MOVW_G3) || kind == CX_FX_A64_ADD_HI12;
}

static uint32_t fx_requirement(uint32_t kind, uint32_t sym) {
  int host = sym != CX_SYM_BASE && sym != CX_SYM_NONE && sym != CX_SYM_TP;
  if (sym == CX_SYM_TP) return CX_F_STATIC_TLS;
  if (kind == (CX_FX_A64_MOVW_G1 | CX_FX_A64_CHECK)) /* MOVZ #:abs_g1: needs V < 4 GiB */
    return host ? CX_F_LOW_HOST : CX_F_LOW_IMAGE;
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
  uint32_t req;           /* requirements derived from the fixups */
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
      if (cx_verify_digests >= 2) cx_sha256(c->img, (size_t)e.size, digest);
      if (cx_verify_digests >= 2 && memcmp(digest, e.sha256, 32) != 0)
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
  /* The metadata digest covers every table: fields no validation can judge
     (fixup addends, the entry point, segment file ranges) are vouched for by
     it.  Checked before any of them is used. */
  uint64_t meta_end = CX_IMAGE_HDR_SIZE, e;
  if ((e = (uint64_t)h->seg_off + (uint64_t)h->seg_count * CX_SEGMENT_SIZE) > meta_end) meta_end = e;
  if ((e = (uint64_t)h->imp_off + (uint64_t)h->imp_count * CX_IMPORT_SIZE) > meta_end) meta_end = e;
  if ((e = (uint64_t)h->fix_off + (uint64_t)h->fix_count * CX_FIXUP_SIZE) > meta_end) meta_end = e;
  if ((e = (uint64_t)h->str_off + (uint64_t)h->str_size) > meta_end) meta_end = e;
  /* (tables past the image end are refused by name below) */
  if (cx_verify_digests >= 1 && meta_end <= c->img_size) {
    struct cx_sha256_ctx sc;
    uint8_t digest[32];
    cx_sha256_init(&sc);
    cx_sha256_update(&sc, c->img, CX_META_DIGEST_AT);
    cx_sha256_update(&sc, c->img + CX_IMAGE_HDR_SIZE, (size_t)(meta_end - CX_IMAGE_HDR_SIZE));
    cx_sha256_final(&sc, digest);
    if (memcmp(digest, h->meta_sha256, 32) != 0)
      return fail(c->err, c->errlen, "image metadata is corrupt (SHA-256 mismatch)");
  }
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
        : f.sym == CX_SYM_TP ? !fx_takes_tp(f.kind)
                             : (f.sym != CX_SYM_BASE && f.sym >= c->h.imp_count))
      return fail(c->err, c->errlen, "fixup %u: bad symbol index %u", i, f.sym);
    if ((fx_is_tls(f.kind) || f.sym == CX_SYM_TP) && !c->h.tls_memsz)
      return fail(c->err, c->errlen, "fixup %u: TLS fixup in an image without TLS", i);
    c->seg_has_fixups[s] = 1;
    *req |= fx_requirement(f.kind, f.sym);
  }
  c->req = *req;
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
    for (uint32_t i = 0; i < c->h.fix_count; i++) {
      struct cx_fixup f;
      read_fixup(c, i, &f);
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

static size_t page_up(struct ctx *c, uint64_t x) {
  return (size_t)((x + c->page - 1) & ~(uint64_t)(c->page - 1));
}

/* Address space for the image (cxcodemem.c): inaccessible, except that on
   macOS ARM64 its code ranges are created as MAP_JIT memory right away. */
static void *try_reserve(struct ctx *c, uint64_t want, size_t size) {
  struct cx_code_range code[CX_MAX_SEGMENTS];
  unsigned n = 0;
  for (uint32_t i = 0; i < c->h.seg_count; i++)
    if (c->seg[i].prot & CX_PROT_X)
      code[n++] = (struct cx_code_range){(size_t)c->seg[i].vaddr, page_up(c, c->seg[i].memsz)};
  return cx_codemem_reserve((uintptr_t)want, size, code, n);
}

/* Reserve vsize bytes of address space at a base satisfying req. */
static int reserve(struct ctx *c, uint32_t req) {
  size_t size = (size_t)c->h.vsize;
  if (!(req & (CX_F_NEAR_HOST | CX_F_LOW_IMAGE))) {
    void *p = try_reserve(c, 0, size);
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
    void *p = try_reserve(c, cand, size);
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

/* Map segments (cxcodemem.c).  A segment that needs writing at load time
   (fixups, or a zeroed tail after file data) is mapped writable first and is
   never executable while it is: RW then RX, or a MAP_JIT write window. */
static int map_segments(struct ctx *c) {
  for (uint32_t i = 0; i < c->h.seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    uintptr_t at = c->base + (uintptr_t)s->vaddr;
    int tail = s->filesz % c->page != 0 && s->memsz > s->filesz;
    int writable_now = c->seg_has_fixups[i] || tail || (s->prot & CX_PROT_W);
    if (cx_codemem_map(at, page_up(c, s->memsz), c->fd, c->img_off + s->offset,
                       (size_t)s->filesz, c->img + s->offset, s->prot, writable_now,
                       c->page) != 0)
      return fail(c->err, c->errlen, "mmap of segment %u failed: %s", i, strerror(errno));
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

static const char *fx_sym_name(struct ctx *c, const struct cx_fixup *f) {
  if (f->sym == CX_SYM_TP) return "its static TLS block";
  if (f->sym >= c->h.imp_count) return "the image itself";
  struct cx_import im;
  memcpy(&im, c->img + c->h.imp_off + (uint64_t)f->sym * CX_IMPORT_SIZE, sizeof im);
  return c->strtab + im.name_off;
}

/* aarch64 instruction fields (kinds 16..28, see cxformat.h).  V = S + A. */
static int apply_a64(struct ctx *c, uint32_t i, const struct cx_fixup *f, unsigned char *p,
                     uint64_t S, uint64_t P) {
  uint64_t V = S + (uint64_t)f->addend;
  uint32_t k = f->kind & ~CX_FX_A64_CHECK, checked = f->kind & CX_FX_A64_CHECK, insn;
  const char *name = fx_sym_name(c, f);
  if (k == CX_FX_A64_TLSDESC) {
    /* {resolver, argument}: the resolver returns the variable's offset from
       the thread pointer.  Static TLS: a constant; otherwise the loader's
       per-thread blocks (module id in the argument's top 16 bits). */
#if defined(__aarch64__)
    uint64_t d[2];
    if (c->req & CX_F_STATIC_TLS) {
      d[0] = (uint64_t)(uintptr_t)cx_tlsdesc_static;
      d[1] = (uint64_t)((int64_t)c->tls_tpoff + f->addend);
    } else {
      if (f->addend < 0 || (uint64_t)f->addend >= (1ull << 48) || !c->tls_module)
        return fail(c->err, c->errlen, "fixup %u: bad TLS descriptor offset %lld", i,
                    (long long)f->addend);
      d[0] = (uint64_t)(uintptr_t)cx_tlsdesc_dynamic;
      d[1] = ((uint64_t)c->tls_module << 48) | (uint64_t)f->addend;
    }
    memcpy(p, d, 16);
    return 0;
#else
    return fail(c->err, c->errlen, "fixup %u: TLS descriptors need an aarch64 loader", i);
#endif
  }
  memcpy(&insn, p, 4);
  if (k == CX_FX_A64_ADRP) {
    if (f->sym < c->h.imp_count && S == 0) {
      /* An absent weak symbol: the address is A, so ADRP Xd becomes MOVZ Xd, #0
         (the page of a small addend); the ADD/LDR :lo12: that follows adds the rest. */
      if (V >> 12)
        return fail(c->err, c->errlen, "fixup %u: ADRP of absent weak symbol %s with addend "
                    "%#llx", i, name, (unsigned long long)V);
      insn = 0xd2800000u | (insn & 0x1f);
    } else {
      int64_t d = ((int64_t)(V & ~0xfffull) - (int64_t)(P & ~0xfffull)) / 4096;
      if (d < -(1 << 20) || d >= (1 << 20))
        return fail(c->err, c->errlen,
                    "non-PIC image: ADRP reference to %s is out of the +-4 GiB reach at this "
                    "address (%#llx away); rebuild with --pic, or load it in an interpreter "
                    "made by 'cosmoext embed'", name, (unsigned long long)(V - P));
      insn = (insn & ~((3u << 29) | (0x7ffffu << 5))) | ((uint32_t)(d & 3) << 29) |
             ((uint32_t)((d >> 2) & 0x7ffff) << 5);
    }
  } else if (k >= CX_FX_A64_ADD_LO12 && k <= CX_FX_A64_LDST128_LO12) {
    unsigned shift = k == CX_FX_A64_ADD_LO12 ? 0 : k - CX_FX_A64_LDST8_LO12;
    uint32_t lo = (uint32_t)(V & 0xfff);
    if (checked && V >= 4096)
      return fail(c->err, c->errlen, "fixup %u: 12-bit offset to %s does not fit (value "
                  "%#llx)", i, name, (unsigned long long)V);
    if (lo & ((1u << shift) - 1))
      return fail(c->err, c->errlen, "fixup %u: address of %s (%#llx) is not aligned for a "
                  "%u-bit access", i, name, (unsigned long long)V, 8u << shift);
    insn = (insn & ~(0xfffu << 10)) | ((lo >> shift) << 10);
  } else if (k == CX_FX_A64_ADD_HI12) {
    if (V >= (1ull << 24))
      return fail(c->err, c->errlen, "fixup %u: offset to %s does not fit 24 bits (value %#llx)%s",
                  i, name, (unsigned long long)V,
                  f->sym == CX_SYM_TP ? ": the static TLS reserve is too far from the thread "
                                        "pointer" : "");
    insn = (insn & ~(0xfffu << 10)) | ((uint32_t)((V >> 12) & 0xfff) << 10);
  } else if (k >= CX_FX_A64_MOVW_G0 && k <= CX_FX_A64_MOVW_G3) {
    unsigned g = k - CX_FX_A64_MOVW_G0;
    if (checked && g < 3 && (V >> (16 * (g + 1))) != 0)
      return fail(c->err, c->errlen,
                  "non-PIC image: MOVZ of %s needs its address below %s (value %#llx); "
                  "rebuild with --pic, or load it in an interpreter made by 'cosmoext embed'",
                  name, g == 0 ? "64 KiB" : g == 1 ? "4 GiB" : "2^48", (unsigned long long)V);
    if (checked && ((insn >> 29) & 3) == 0) insn |= 2u << 29; /* MOVN -> MOVZ */
    insn = (insn & ~(0xffffu << 5)) | ((uint32_t)((V >> (16 * g)) & 0xffff) << 5);
  } else {
    return fail(c->err, c->errlen, "fixup %u: kind %u is not supported on this machine", i,
                f->kind);
  }
  memcpy(p, &insn, 4);
  return 0;
}

static int apply_fixups(struct ctx *c) {
  for (uint32_t i = 0; i < c->h.fix_count; i++) {
    struct cx_fixup f;
    read_fixup(c, i, &f);
    unsigned char *p = (unsigned char *)(c->base + (uintptr_t)f.vaddr);
    uint64_t S = f.sym == CX_SYM_BASE ? c->base
               : f.sym == CX_SYM_NONE ? 0
               : f.sym == CX_SYM_TP   ? (uint64_t)c->tls_tpoff
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
        if (c->h.machine == CX_EM_AARCH64) {
          if (apply_a64(c, i, &f, p, S, P)) return -1;
          break;
        }
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
    /* RX/R; for code also the instruction cache (and the MAP_JIT window) */
    if (cx_codemem_protect(c->base + (uintptr_t)s->vaddr, page_up(c, s->memsz), s->prot) != 0)
      return fail(c->err, c->errlen, "mprotect of segment %u failed: %s", i, strerror(errno));
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
  cx_codemem_abort(); /* a MAP_JIT write window may still be open */
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
  /* C++ exceptions: one unwinder (the interpreter's) for every image.  From
     here on the image is never unmapped. */
  if (im->eh && host->register_frames) host->register_frames((const void *)im->eh);
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
