/* One load in progress: the state cxload.c hands to validation, placement,
   fixups and static TLS while it maps an image (internal to the loader). */
#ifndef CXLOADCTX_H
#define CXLOADCTX_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cxformat.h"
#include "cxload.h"

struct cx_ctx {
  const char *path;
  const char *want_name; /* module the caller imports; NULL: any */
  char *err;
  size_t errlen;
  const struct cx_host *host;
  int fd;
  size_t file_size;          /* from fstat */
  unsigned char *head;       /* malloc'd: the file's first head_len bytes */
  size_t head_len;           /* min(file_size, CX_HEAD_MAX) */
  unsigned char *img_buf;    /* the image (anonymous mapping), when it lies past head_len */
  uint64_t img_off;          /* this machine's image: offset in file, size */
  uint64_t img_size;
  uint32_t img_crc32c;       /* its checksums from the image table */
  uint8_t img_sha256[32];
  const unsigned char *img;  /* its bytes (in head or img_buf) */
  int in_place;              /* only its first meta_len bytes (header, tables) are read;
                                the segments go straight into the mapping (cxload.c) */
  size_t meta_len;
  struct cx_image_hdr h;
  struct cx_segment seg[CX_MAX_SEGMENTS];
  unsigned seg_has_fixups[CX_MAX_SEGMENTS];
  const void **imp_addr;
  const char *strtab;
  uintptr_t base;
  size_t map_size; /* bytes mapped at base (see cx_reserve) */
  int one_map;     /* the image is one RW mapping, protected in runs */
  size_t page;
  intptr_t tls_tpoff; /* static TLS block offset from the thread pointer */
  size_t tls_module;
  uint32_t req;           /* requirements derived from the fixups */
  size_t tls_used_before; /* static reserve watermark, restored on failure */
  size_t tls_start;       /* the image's block, from the reserve's start */
  int tls_seeded;         /* its template bytes were written: never reuse it */
};

#pragma GCC visibility push(hidden) /* internal to the runtime */
/* One error format: the caller prefixes "cannot load PATH: ".  Returns -1. */
int cx_fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#pragma GCC visibility pop

static inline const char *cx_str_at(struct cx_ctx *c, uint32_t off) {
  return off < c->h.str_size ? c->strtab + off : NULL;
}

/* Fixup i of the (validated) table; the file need not be aligned. */
static inline void cx_read_fixup(struct cx_ctx *c, uint32_t i, struct cx_fixup *f) {
  memcpy(f, c->img + c->h.fix_off + (uint64_t)i * CX_FIXUP_SIZE, sizeof *f);
}

/* What fixup f refers to, for error messages. */
static inline const char *cx_fixup_sym_name(struct cx_ctx *c, const struct cx_fixup *f) {
  if (f->sym == CX_SYM_TP) return "its static TLS block";
  if (f->sym >= c->h.imp_count) return "the image itself";
  struct cx_import im;
  memcpy(&im, c->img + c->h.imp_off + (uint64_t)f->sym * CX_IMPORT_SIZE, sizeof im);
  return c->strtab + im.name_off;
}

#endif
