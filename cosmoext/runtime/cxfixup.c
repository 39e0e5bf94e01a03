/* Fixups: what each kind writes and which placement it requires, their
   validation before mapping, import resolution, and the data-word kinds
   (both machines); aarch64 instruction fields are in cxfixup_aarch64.c. */
#define _GNU_SOURCE 1
#include "cxfixup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxcxx.h"
#include "cxfixup_aarch64.h"
#include "cxformat.h"
#include "cxload.h"
#include "cxvalidate.h"

static unsigned fx_width(uint32_t kind, unsigned machine) {
  switch (kind) {
    case CX_FX_ABS64: case CX_FX_PC64: case CX_FX_TPOFF64: case CX_FX_DTPMOD64:
      return 8;
    case CX_FX_ABS32: case CX_FX_ABS32S: case CX_FX_PC32: case CX_FX_TPOFF32:
      return 4;
    default:
      break;
  }
  return machine == CX_EM_AARCH64 ? cx_a64_fixup_width(kind) : 0;
}

static int fx_is_tls(uint32_t kind) {
  return kind == CX_FX_TPOFF64 || kind == CX_FX_TPOFF32 || kind == CX_FX_DTPMOD64 ||
         kind == CX_FX_A64_TLSDESC;
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

static const char *import_name(struct cx_ctx *c, uint32_t i, struct cx_import *im) {
  memcpy(im, c->img + c->h.imp_off + (uint64_t)i * CX_IMPORT_SIZE, sizeof *im);
  return cx_str_at(c, im->name_off);
}

int cx_resolve_imports(struct cx_ctx *c) {
  struct cx_image_hdr *h = &c->h;
  struct cx_import im;
  c->imp_addr = calloc(h->imp_count ? h->imp_count : 1, sizeof *c->imp_addr);
  if (!c->imp_addr) return cx_fail(c->err, c->errlen, "out of memory");
  /* Built with cxx-runtime = shared: a non-weak C++ runtime name the host's
     names lack (a static-runtime image defines every one it calls; its weak
     __cxa_pure_virtual must not open the shared runtime). */
  int shared_cxx = 0;
  for (uint32_t i = 0; i < h->imp_count; i++) {
    const char *name = import_name(c, i, &im);
    if (!name || !*name || im.flags & ~CX_IMP_WEAK || cx_gnu_hash_str(name) != im.hash)
      return cx_fail(c->err, c->errlen, "import %u: bad entry", i);
    c->imp_addr[i] = c->host->resolve(name, im.hash);
    shared_cxx |= !c->imp_addr[i] && !(im.flags & CX_IMP_WEAK) && cx_cxx_name(name);
  }
  size_t missing = 0, len = 0;
  int cxx = 0; /* a C++ runtime name is missing */
  char list[640] = "";
  for (uint32_t i = 0; i < h->imp_count; i++) {
    if (c->imp_addr[i]) continue;
    const char *name = import_name(c, i, &im);
    if (shared_cxx && c->host->resolve_cxx && cx_cxx_name(name))
      c->imp_addr[i] = c->host->resolve_cxx(name, im.hash);
    if (!c->imp_addr[i] && !(im.flags & CX_IMP_WEAK)) {
      if (len + strlen(name) + 8 < sizeof list) {
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", missing ? ", " : "", name);
      } else if (len + 5 < sizeof list && !strstr(list, ", ...")) {
        len += (size_t)snprintf(list + len, sizeof list - len, ", ...");
      }
      missing++;
      cxx |= cx_cxx_name(name);
    }
  }
  if (missing)
    return cx_fail(c->err, c->errlen,
                   "%zu undefined symbol%s not exported by this interpreter: %s%s", missing,
                   missing == 1 ? "" : "s", list,
                   cxx ? " (C++ runtime names: an image built with cxx-runtime = shared needs "
                         "a host CPython with libstdc++.so.6 that defines them; rebuild with "
                         "cxx-runtime = static)" : "");
  return 0;
}

/* Validate every fixup and derive the placement requirements from them. */
int cx_validate_fixups(struct cx_ctx *c, uint32_t *req) {
  unsigned machine = cx_machine();
  *req = 0;
  for (uint32_t i = 0; i < c->h.fix_count; i++) {
    struct cx_fixup f;
    cx_read_fixup(c, i, &f);
    unsigned w = fx_width(f.kind, machine);
    if (!w) return cx_fail(c->err, c->errlen, "fixup %u: unknown kind %u", i, f.kind);
    int s = cx_seg_of(c, f.vaddr, w);
    if (s < 0 || f.vaddr + w > c->seg[s].vaddr + c->seg[s].filesz)
      return cx_fail(c->err, c->errlen, "fixup %u: target %#llx outside the image's data", i,
                     (unsigned long long)f.vaddr);
    if (fx_is_tls(f.kind) ? f.sym != CX_SYM_NONE
        : f.sym == CX_SYM_TP ? !cx_a64_fixup_takes_tp(f.kind)
                             : (f.sym != CX_SYM_BASE && f.sym >= c->h.imp_count))
      return cx_fail(c->err, c->errlen, "fixup %u: bad symbol index %u", i, f.sym);
    if ((fx_is_tls(f.kind) || f.sym == CX_SYM_TP) && !c->h.tls_memsz)
      return cx_fail(c->err, c->errlen, "fixup %u: TLS fixup in an image without TLS", i);
    c->seg_has_fixups[s] = 1;
    *req |= fx_requirement(f.kind, f.sym);
  }
  c->req = *req;
  if ((c->h.flags & CX_F_REQUIREMENTS) != *req)
    return cx_fail(c->err, c->errlen, "image header flags %#x disagree with its fixups (%#x)",
                   c->h.flags & CX_F_REQUIREMENTS, *req);
  return 0;
}

static int put32(struct cx_ctx *c, uint32_t i, unsigned char *p, int64_t v, int sign,
                 const char *what) {
  if (sign ? (v < INT32_MIN || v > INT32_MAX) : (v < 0 || v > (int64_t)UINT32_MAX)) {
    struct cx_fixup f;
    cx_read_fixup(c, i, &f);
    const char *name = "the image itself";
    if (f.sym < c->h.imp_count) {
      struct cx_import im;
      memcpy(&im, c->img + c->h.imp_off + (uint64_t)f.sym * CX_IMPORT_SIZE, sizeof im);
      name = c->strtab + im.name_off;
    }
    return cx_fail(c->err, c->errlen,
                   "non-PIC image: %s reference to %s does not fit 32 bits at this address "
                   "(value %#llx); rebuild with --pic, or load it in an interpreter made by "
                   "'cosmoext embed'", what, name, (unsigned long long)v);
  }
  uint32_t u = (uint32_t)v;
  memcpy(p, &u, 4);
  return 0;
}

int cx_apply_fixups(struct cx_ctx *c) {
  for (uint32_t i = 0; i < c->h.fix_count; i++) {
    struct cx_fixup f;
    cx_read_fixup(c, i, &f);
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
          if (cx_a64_apply_fixup(c, i, &f, p, S, P)) return -1;
          break;
        }
        return cx_fail(c->err, c->errlen, "fixup %u: kind %u is not supported on this machine", i,
                       f.kind);
    }
  }
  return 0;
}
