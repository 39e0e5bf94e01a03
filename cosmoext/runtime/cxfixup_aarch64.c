/* aarch64 instruction fixups (kinds 16..28, see cxformat.h): which kinds
   exist, and the encoders that patch ADRP/ADD/LDST/MOVW fields. */
#define _GNU_SOURCE 1
#include "cxfixup_aarch64.h"

#include <string.h>

#include "cxfixup.h"
#include "cxformat.h"
#include "cxtlsdesc_aarch64.h"

unsigned cx_a64_fixup_width(uint32_t kind) {
  if (kind & CX_FX_A64_CHECK) /* the modifier applies to ADD/LDST lo12 and MOVW kinds */
    return (kind & ~CX_FX_A64_CHECK) >= CX_FX_A64_ADD_LO12 &&
                   (kind & ~CX_FX_A64_CHECK) <= CX_FX_A64_MOVW_G3 ? 4 : 0;
  if (kind >= CX_FX_A64_ADRP && kind <= CX_FX_A64_MOVW_G3) return 4;
  if (kind == CX_FX_A64_ADD_HI12) return 4;
  if (kind == CX_FX_A64_TLSDESC) return 16;
  return 0;
}

int cx_a64_fixup_takes_tp(uint32_t kind) {
  uint32_t k = kind & ~CX_FX_A64_CHECK;
  return (k >= CX_FX_A64_ADD_LO12 && k <= CX_FX_A64_MOVW_G3) || kind == CX_FX_A64_ADD_HI12;
}

int cx_a64_apply_fixup(struct cx_ctx *c, uint32_t i, const struct cx_fixup *f, unsigned char *p,
                       uint64_t S, uint64_t P) {
  uint64_t V = S + (uint64_t)f->addend;
  uint32_t k = f->kind & ~CX_FX_A64_CHECK, checked = f->kind & CX_FX_A64_CHECK, insn;
  const char *name = cx_fixup_sym_name(c, f);
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
        return cx_fail(c->err, c->errlen, "fixup %u: bad TLS descriptor offset %lld", i,
                       (long long)f->addend);
      d[0] = (uint64_t)(uintptr_t)cx_tlsdesc_dynamic;
      d[1] = ((uint64_t)c->tls_module << 48) | (uint64_t)f->addend;
    }
    memcpy(p, d, 16);
    return 0;
#else
    return cx_fail(c->err, c->errlen, "fixup %u: TLS descriptors need an aarch64 loader", i);
#endif
  }
  memcpy(&insn, p, 4);
  if (k == CX_FX_A64_ADRP) {
    if (f->sym < c->h.imp_count && S == 0) {
      /* An absent weak symbol: the address is A, so ADRP Xd becomes MOVZ Xd, #0
         (the page of a small addend); the ADD/LDR :lo12: that follows adds the rest. */
      if (V >> 12)
        return cx_fail(c->err, c->errlen, "fixup %u: ADRP of absent weak symbol %s with addend "
                       "%#llx", i, name, (unsigned long long)V);
      insn = 0xd2800000u | (insn & 0x1f);
    } else {
      int64_t d = ((int64_t)(V & ~0xfffull) - (int64_t)(P & ~0xfffull)) / 4096;
      if (d < -(1 << 20) || d >= (1 << 20))
        return cx_fail(c->err, c->errlen,
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
      return cx_fail(c->err, c->errlen, "fixup %u: 12-bit offset to %s does not fit (value "
                     "%#llx)", i, name, (unsigned long long)V);
    if (lo & ((1u << shift) - 1))
      return cx_fail(c->err, c->errlen, "fixup %u: address of %s (%#llx) is not aligned for a "
                     "%u-bit access", i, name, (unsigned long long)V, 8u << shift);
    insn = (insn & ~(0xfffu << 10)) | ((lo >> shift) << 10);
  } else if (k == CX_FX_A64_ADD_HI12) {
    if (V >= (1ull << 24))
      return cx_fail(c->err, c->errlen,
                     "fixup %u: offset to %s does not fit 24 bits (value %#llx)%s", i, name,
                     (unsigned long long)V,
                     f->sym == CX_SYM_TP ? ": the static TLS reserve is too far from the thread "
                                           "pointer" : "");
    insn = (insn & ~(0xfffu << 10)) | ((uint32_t)((V >> 12) & 0xfff) << 10);
  } else if (k >= CX_FX_A64_MOVW_G0 && k <= CX_FX_A64_MOVW_G3) {
    unsigned g = k - CX_FX_A64_MOVW_G0;
    if (checked && g < 3 && (V >> (16 * (g + 1))) != 0)
      return cx_fail(c->err, c->errlen,
                     "non-PIC image: MOVZ of %s needs its address below %s (value %#llx); "
                     "rebuild with --pic, or load it in an interpreter made by 'cosmoext embed'",
                     name, g == 0 ? "64 KiB" : g == 1 ? "4 GiB" : "2^48", (unsigned long long)V);
    if (checked && ((insn >> 29) & 3) == 0) insn |= 2u << 29; /* MOVN -> MOVZ */
    insn = (insn & ~(0xffffu << 5)) | ((uint32_t)((V >> (16 * g)) & 0xffff) << 5);
  } else {
    return cx_fail(c->err, c->errlen, "fixup %u: kind %u is not supported on this machine", i,
                   f->kind);
  }
  memcpy(p, &insn, 4);
  return 0;
}
