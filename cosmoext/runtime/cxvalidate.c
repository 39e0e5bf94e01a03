/* Validation before mapping: every field of the file and image headers
   and every table bound is checked here, so later stages can trust them. */
#define _GNU_SOURCE 1
#include "cxvalidate.h"

#include <stdio.h>
#include <string.h>

#include "cxcrc32c.h"
#include "cxformat.h"
#include "cxload.h"
#include "cxsha256.h"

/* Checks at load: 0 none (tests only); 1 (the default) the CRC-32C
   checksums, which cover every byte the loader uses: the file header and
   image table, and the whole image (header, tables, segment bytes); 2 also
   the image's SHA-256 (COSMOEXT_VERIFY=1). */
int cx_verify_digests = 1;

_Static_assert(sizeof(struct cx_file_hdr) == CX_FILE_HDR_SIZE, "file header");
_Static_assert(sizeof(struct cx_image_ent) == CX_IMAGE_ENT_SIZE, "image entry");
_Static_assert(sizeof(struct cx_image_hdr) == CX_IMAGE_HDR_SIZE, "image header");
_Static_assert(sizeof(struct cx_segment) == CX_SEGMENT_SIZE, "segment");
_Static_assert(sizeof(struct cx_import) == CX_IMPORT_SIZE, "import");
_Static_assert(sizeof(struct cx_fixup) == CX_FIXUP_SIZE, "fixup");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cosmoext images are little-endian; big-endian hosts are not supported"
#endif

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

int cx_validate_file(struct cx_ctx *c) {
  struct cx_file_hdr fh;
  unsigned machine = cx_machine();
  if (c->head_len < CX_FILE_HDR_SIZE)
    return cx_fail(c->err, c->errlen,
                   "file is %zu bytes, shorter than the %d-byte header (truncated?)", c->file_size,
                   CX_FILE_HDR_SIZE);
  memcpy(&fh, c->head, sizeof fh);
  if (memcmp(fh.magic, CX_MAGIC, 8) != 0)
    return cx_fail(c->err, c->errlen, "not a .cosmoext file (bad magic)");
  if (fh.version_major == 1)
    return cx_fail(c->err, c->errlen,
                   "format version %u.%u; rebuild with this cosmoext (this loader reads %d.x)",
                   fh.version_major, fh.version_minor, CX_VERSION_MAJOR);
  if (fh.version_major != CX_VERSION_MAJOR)
    return cx_fail(c->err, c->errlen,
                   "format version %u.%u is not supported (this loader reads %d.x)",
                   fh.version_major, fh.version_minor, CX_VERSION_MAJOR);
  if (fh.header_size != CX_FILE_HDR_SIZE || fh.entry_size != CX_IMAGE_ENT_SIZE)
    return cx_fail(c->err, c->errlen, "bad file header (header or entry size)");
  if (fh.file_size != c->file_size)
    return cx_fail(c->err, c->errlen,
                   "file is %zu bytes but its header says %llu (truncated or padded)",
                   c->file_size, (unsigned long long)fh.file_size);
  if (fh.image_count < 1 || fh.image_count > CX_MAX_IMAGES)
    return cx_fail(c->err, c->errlen, "bad image count %u", fh.image_count);
  /* the table lies in the bytes read first; head_crc32c covers up to its end */
  uint64_t table_end = fh.table_offset + (uint64_t)fh.image_count * CX_IMAGE_ENT_SIZE;
  if (fh.table_offset < CX_FILE_HDR_SIZE ||
      !in_bounds(fh.table_offset, (uint64_t)fh.image_count * CX_IMAGE_ENT_SIZE, c->head_len))
    return cx_fail(c->err, c->errlen, "image table out of bounds");
  if (cx_verify_digests >= 1) {
    uint32_t crc = cx_crc32c(0, c->head, CX_HEAD_CRC_AT);
    crc = cx_crc32c(crc, c->head + CX_HEAD_CRC_AT + 4, (size_t)table_end - CX_HEAD_CRC_AT - 4);
    if (crc != fh.head_crc32c)
      return cx_fail(c->err, c->errlen,
                     "file header or image table is corrupt (CRC-32C mismatch)");
  }
  char have[64] = "";
  int found = -1;
  for (uint32_t i = 0; i < fh.image_count; i++) {
    struct cx_image_ent e;
    memcpy(&e, c->head + fh.table_offset + (uint64_t)i * CX_IMAGE_ENT_SIZE, sizeof e);
    if (e.offset % CX_FILE_ALIGN || e.offset < table_end ||
        !in_bounds(e.offset, e.size, c->file_size) || e.size < CX_IMAGE_HDR_SIZE)
      return cx_fail(c->err, c->errlen, "image %u (%s) out of bounds or misaligned", i,
                     cx_machine_name(e.machine));
    size_t len = strlen(have);
    snprintf(have + len, sizeof have - len, "%s%s", len ? ", " : "", cx_machine_name(e.machine));
    if (e.machine == machine && found < 0) {
      found = (int)i;
      c->img_off = e.offset;
      c->img_size = e.size;
      c->img_crc32c = e.crc32c;
      memcpy(c->img_sha256, e.sha256, 32);
    }
  }
  if (found < 0)
    return cx_fail(c->err, c->errlen, "no image for this machine (%s); the file has: %s",
                   cx_machine_name(machine), have);
  return 0;
}

int cx_verify_image(struct cx_ctx *c) {
  unsigned machine = cx_machine();
  if (cx_verify_digests >= 1 && cx_crc32c(0, c->img, (size_t)c->img_size) != c->img_crc32c)
    return cx_fail(c->err, c->errlen, "%s image is corrupt (CRC-32C mismatch)",
                   cx_machine_name(machine));
  uint8_t digest[32];
  if (cx_verify_digests >= 2) cx_sha256(c->img, (size_t)c->img_size, digest);
  if (cx_verify_digests >= 2 && memcmp(digest, c->img_sha256, 32) != 0)
    return cx_fail(c->err, c->errlen, "%s image is corrupt (SHA-256 mismatch)",
                   cx_machine_name(machine));
  return 0;
}

int cx_validate_image(struct cx_ctx *c) {
  struct cx_image_hdr *h = &c->h;
  unsigned machine = cx_machine();
  memcpy(h, c->img, sizeof *h);
  if (memcmp(h->magic, CX_IMAGE_MAGIC, 4) != 0 || h->machine != machine ||
      h->header_size != CX_IMAGE_HDR_SIZE || h->align < CX_MIN_BASE_ALIGN ||
      h->align > CX_ALIGN || (h->align & (h->align - 1)))
    return cx_fail(c->err, c->errlen, "bad image header");
  /* Every byte read from here on is covered by the image's crc32c, checked
     by cx_verify_image (so are fields no validation can judge: fixup
     addends, the entry point, segment file ranges).  meta_sha256 is for
     cosmoext.format.parse; at level 2 the image's SHA-256 covers it too. */
  char got[16];
  if (!fixed_str_eq(h->target, c->host->target)) {
    fixed_str_copy(got, h->target);
    return cx_fail(c->err, c->errlen, "built for target '%s', this interpreter is '%s'", got,
                   c->host->target);
  }
  if (!fixed_str_eq(h->python_abi, c->host->python_abi)) {
    fixed_str_copy(got, h->python_abi);
    return cx_fail(c->err, c->errlen, "built for Python ABI '%s', this interpreter is '%s'", got,
                   c->host->python_abi);
  }
  if (h->vsize == 0 || h->vsize % CX_ALIGN || h->vsize > CX_MAX_VSIZE)
    return cx_fail(c->err, c->errlen, "bad image size %llu", (unsigned long long)h->vsize);
  /* Tables and string table. */
  if (h->str_size == 0 || h->str_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->str_off, h->str_size, c->img_size) ||
      c->img[h->str_off + h->str_size - 1] != 0)
    return cx_fail(c->err, c->errlen, "string table out of bounds or unterminated");
  c->strtab = (const char *)c->img + h->str_off;
  if (h->seg_count < 1 || h->seg_count > CX_MAX_SEGMENTS || h->seg_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->seg_off, (uint64_t)h->seg_count * CX_SEGMENT_SIZE, c->img_size))
    return cx_fail(c->err, c->errlen, "segment table out of bounds");
  if (h->imp_count > CX_MAX_IMPORTS || h->imp_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->imp_off, (uint64_t)h->imp_count * CX_IMPORT_SIZE, c->img_size))
    return cx_fail(c->err, c->errlen, "import table out of bounds");
  if (h->fix_count > CX_MAX_FIXUPS || h->fix_off < CX_IMAGE_HDR_SIZE ||
      !in_bounds(h->fix_off, (uint64_t)h->fix_count * CX_FIXUP_SIZE, c->img_size))
    return cx_fail(c->err, c->errlen, "fixup table out of bounds");
  const char *name = cx_str_at(c, h->name_off);
  if (!name || !is_ident(name, 64))
    return cx_fail(c->err, c->errlen, "bad module name in image header");
  /* Segments: aligned, ordered, disjoint, inside vsize and the file. */
  uint64_t prev_end = 0;
  for (uint32_t i = 0; i < h->seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    memcpy(s, c->img + h->seg_off + (uint64_t)i * CX_SEGMENT_SIZE, sizeof *s);
    static const uint32_t want_prot[] = {0, CX_PROT_R | CX_PROT_X, CX_PROT_R, CX_PROT_R,
                                         CX_PROT_R | CX_PROT_W};
    if (s->kind < CX_SEG_TEXT || s->kind > CX_SEG_DATA || s->prot != want_prot[s->kind])
      return cx_fail(c->err, c->errlen, "segment %u: bad kind or protection", i);
    if (s->vaddr % CX_ALIGN || s->vaddr < prev_end || s->memsz == 0 ||
        !in_bounds(s->vaddr, s->memsz, h->vsize) || s->filesz > s->memsz)
      return cx_fail(c->err, c->errlen, "segment %u: bad address range", i);
    if (s->filesz && (s->offset % CX_FILE_ALIGN || s->offset < CX_IMAGE_HDR_SIZE ||
                      !in_bounds(s->offset, s->filesz, c->img_size)))
      return cx_fail(c->err, c->errlen, "segment %u: file range out of bounds", i);
    prev_end = s->vaddr + s->memsz;
  }
  /* Refuse the wrong module here, while nothing is mapped and no initialiser has run. */
  if (c->want_name && strcmp(name, c->want_name) != 0)
    return cx_fail(c->err, c->errlen, "it holds module '%s', not '%s'", name, c->want_name);
  return 0;
}


int cx_seg_of(struct cx_ctx *c, uint64_t va, uint64_t len) {
  for (uint32_t i = 0; i < c->h.seg_count; i++) {
    struct cx_segment *s = &c->seg[i];
    if (va >= s->vaddr && in_bounds(va - s->vaddr, len, s->memsz)) return (int)i;
  }
  return -1;
}

int cx_validate_ranges(struct cx_ctx *c) {
  struct cx_image_hdr *h = &c->h;
  int s = cx_seg_of(c, h->entry, 1);
  if (s < 0 || !(c->seg[s].prot & CX_PROT_X))
    return cx_fail(c->err, c->errlen, "module entry point PyInit_%s is missing or not in code",
                   c->strtab + h->name_off);
  if (h->init_count > CX_MAX_INIT || h->fini_count > CX_MAX_INIT)
    return cx_fail(c->err, c->errlen, "too many initialisers");
  if (h->init_count && (h->init_vaddr % 8 || cx_seg_of(c, h->init_vaddr, 8ull * h->init_count) < 0))
    return cx_fail(c->err, c->errlen, ".init_array out of bounds");
  if (h->fini_count && (h->fini_vaddr % 8 || cx_seg_of(c, h->fini_vaddr, 8ull * h->fini_count) < 0))
    return cx_fail(c->err, c->errlen, ".fini_array out of bounds");
  if (h->eh_size && cx_seg_of(c, h->eh_vaddr, h->eh_size) < 0)
    return cx_fail(c->err, c->errlen, ".eh_frame out of bounds");
  if (h->ehhdr_size && (h->ehhdr_size < 8 || cx_seg_of(c, h->ehhdr_vaddr, h->ehhdr_size) < 0))
    return cx_fail(c->err, c->errlen, ".eh_frame_hdr out of bounds");
  if (h->tls_memsz) {
    if (h->tls_filesz > h->tls_memsz || h->tls_align == 0 || (h->tls_align & (h->tls_align - 1)) ||
        h->tls_align > 4096 || (h->tls_filesz && cx_seg_of(c, h->tls_vaddr, h->tls_filesz) < 0))
      return cx_fail(c->err, c->errlen, "bad thread-local storage template");
  } else if (h->tls_filesz) {
    return cx_fail(c->err, c->errlen, "bad thread-local storage template");
  }
  return 0;
}
