"""x86_64 relocations (psABI names), resolved at build time or turned into fixups.

S: symbol, A: addend, P: place, G: GOT slot, L: PLT stub, GOT: GOT base.
Internal references are resolved here; references to host symbols become
fixups; TLS references become TPOFF (static TLS) or DTPMOD (the loader's
``__tls_get_addr``) fixups.
"""

from __future__ import annotations

import struct

from .. import format as fmt
from ..errors import LinkError
from . import elf
from .model import LINKER_SYMBOLS, Link, symkey, tls_offset, unsupported_error

R = {
    "NONE": 0, "64": 1, "PC32": 2, "GOT32": 3, "PLT32": 4, "COPY": 5,
    "GLOB_DAT": 6, "JUMP_SLOT": 7, "RELATIVE": 8, "GOTPCREL": 9, "32": 10,
    "32S": 11, "16": 12, "PC16": 13, "8": 14, "PC8": 15, "DTPMOD64": 16,
    "DTPOFF64": 17, "TPOFF64": 18, "TLSGD": 19, "TLSLD": 20, "DTPOFF32": 21,
    "GOTTPOFF": 22, "TPOFF32": 23, "PC64": 24, "GOTOFF64": 25, "GOTPC32": 26,
    "GOT64": 27, "GOTPCREL64": 28, "GOTPC64": 29, "PLTOFF64": 31, "SIZE32": 32,
    "SIZE64": 33, "GOTPC32_TLSDESC": 34, "TLSDESC_CALL": 35, "TLSDESC": 36,
    "IRELATIVE": 37, "GOTPCRELX": 41, "REX_GOTPCRELX": 42,
}
NAMES = {v: f"R_X86_64_{k}" for k, v in R.items()}
GOTPCREL_KINDS = (R["GOTPCREL"], R["GOTPCRELX"], R["REX_GOTPCRELX"])
SUPPORTED = {
    R[k] for k in (
        "NONE", "64", "PC32", "PLT32", "GOTPCREL", "32", "32S", "DTPMOD64", "DTPOFF64",
        "TPOFF64", "TLSGD", "TLSLD", "DTPOFF32", "GOTTPOFF", "TPOFF32", "PC64",
        "GOTOFF64", "GOTPC32", "GOT64", "GOTPCREL64", "GOTPC64", "PLTOFF64", "SIZE32",
        "SIZE64", "GOTPCRELX", "REX_GOTPCRELX",
    )
}
HINTS = {
    R["GOTPC32_TLSDESC"]: "TLS descriptors are not supported on x86_64; build with "
                          "-mtls-dialect=gnu (the default)",
    R["TLSDESC_CALL"]: "TLS descriptors are not supported on x86_64; build with "
                       "-mtls-dialect=gnu (the default)",
    R["COPY"]: "dynamic relocations cannot appear in relocatable objects",
}


def reloc_name(t: int) -> str:
    return NAMES.get(t, f"R_X86_64_<{t}>")


def unsupported(where: str, sec: str, offset: int, rtype: int) -> LinkError:
    return unsupported_error(where, sec, offset, reloc_name(rtype), rtype, HINTS.get(rtype))


def _internal(obj: elf.ElfObject, idx: int) -> bool:
    """Defined in this image at a loadable, non-TLS address."""
    sym = obj.symbols[idx]
    if sym.shndx == elf.SHN_UNDEF:
        return sym.name in ("_GLOBAL_OFFSET_TABLE_", "__dso_handle")
    if sym.shndx >= len(obj.sections) or sym.type == elf.STT_GNU_IFUNC:
        return False
    sec = obj.sections[sym.shndx]
    return sec.alloc and not sec.flags & elf.SHF_TLS


def _fits(v: int, bits: int, signed: bool) -> bool:
    if signed:
        return -(1 << (bits - 1)) <= v < (1 << (bits - 1))
    return 0 <= v < (1 << bits)


class X86_64:
    machine = fmt.EM_X86_64
    arch = "x86_64"
    emulation = "elf_x86_64"
    default_ld = "ld"
    plt_entry_size = 8
    supported = SUPPORTED
    reloc_name = staticmethod(reloc_name)
    unsupported = staticmethod(unsupported)

    def __init__(self) -> None:
        self.got_sym: dict[tuple[str, object], tuple[int, int]] = {}

    def _relaxable(self, link: Link, sec: elf.Section, rel: elf.Reloc) -> bool:
        # mov foo@GOTPCREL(%rip), %reg -> lea foo(%rip), %reg for internal foo.
        return (rel.type in (R["GOTPCRELX"], R["REX_GOTPCRELX"]) and rel.offset >= 2
                and _internal(link.obj, rel.sym) and sec.data[rel.offset - 2] == 0x8B)

    def scan(self, link: Link, sec: elf.Section, rel: elf.Reloc) -> list[tuple[str, object]]:
        t = rel.type
        if t not in SUPPORTED:
            raise unsupported(link.obj.path, sec.name, rel.offset, t)
        key = symkey(link.obj, rel.sym)
        keys: list[tuple[str, object]] = []
        if t in GOTPCREL_KINDS or t in (R["GOT64"], R["GOTPCREL64"]):
            if not (t in GOTPCREL_KINDS and self._relaxable(link, sec, rel)):
                keys = [("sym", key)]
        elif t == R["PLT32"] or t == R["PLTOFF64"]:
            sym = link.obj.symbols[rel.sym]
            if sym.shndx == elf.SHN_UNDEF and sym.name not in LINKER_SYMBOLS:
                keys = [("sym", key)]
        elif t == R["TLSGD"]:
            keys = [("tlsgd0", key), ("tlsgd1", key)]
        elif t == R["TLSLD"]:
            keys = [("tlsld0", ""), ("tlsld1", "")]
        elif t == R["GOTTPOFF"]:
            keys = [("tpoff", key)]
        for k in keys:
            self.got_sym.setdefault(k, (rel.sym, 0))
        return keys

    def needs_plt(self, link: Link, rel: elf.Reloc) -> bool:
        return rel.type in (R["PLT32"], R["PLTOFF64"])

    def write_plt(self, link: Link, stub: int, got_slot: int) -> None:
        code = b"\xff\x25" + struct.pack("<i", got_slot - (stub + 6)) + b"\xcc\xcc"
        for i, b in enumerate(code):
            link.write(stub + i, "<B", b)

    def place_veneers(self, link: Link, relocs: list[tuple[elf.Section, elf.Reloc]],
                      va: int) -> int:
        return va  # rel32 calls reach the whole image; imports go through the PLT

    def write_code(self, link: Link) -> None:
        pass

    def apply(self, link: Link, sec: elf.Section, rel: elf.Reloc, P: int) -> None:
        t, A = rel.type, rel.addend
        L = link.layout
        where = f"{link.obj.path}: section {sec.name} offset {rel.offset:#x}"

        def put(fmt_: str, v: int, bits: int, signed: bool) -> None:
            if not _fits(v, bits, signed):
                raise LinkError(f"{where}: {reloc_name(t)} value {v:#x} does not fit "
                                f"{'signed' if signed else 'unsigned'} {bits} bits")
            link.write(P, fmt_, v)

        if t == R["NONE"]:
            return
        if t in (R["DTPOFF32"], R["DTPOFF64"]):
            v = tls_offset(link, rel.sym, A)
            put("<i", v, 32, True) if t == R["DTPOFF32"] else link.write(P, "<q", v)
            return
        if t in (R["TPOFF32"], R["TPOFF64"]):
            kind = fmt.FX_TPOFF32 if t == R["TPOFF32"] else fmt.FX_TPOFF64
            link.fixup(P, kind, fmt.SYM_NONE, tls_offset(link, rel.sym, A))
            return
        if t == R["DTPMOD64"]:
            tls_offset(link, rel.sym, 0)
            link.fixup(P, fmt.FX_DTPMOD64, fmt.SYM_NONE, 0)
            return
        if t == R["TLSGD"]:
            put("<i", L.got[("tlsgd0", symkey(link.obj, rel.sym))] + A - P, 32, True)
            return
        if t == R["TLSLD"]:
            put("<i", L.got[("tlsld0", "")] + A - P, 32, True)
            return
        if t == R["GOTTPOFF"]:
            put("<i", L.got[("tpoff", symkey(link.obj, rel.sym))] + A - P, 32, True)
            return
        if t in (R["GOTPC32"], R["GOTPC64"]):
            v = L.got_base + A - P
            put("<i", v, 32, True) if t == R["GOTPC32"] else link.write(P, "<q", v)
            return
        if t in GOTPCREL_KINDS or t in (R["GOT64"], R["GOTPCREL64"]):
            if t in GOTPCREL_KINDS and self._relaxable(link, sec, rel):
                link.write(P - 2, "<B", 0x8D)  # mov -> lea
                put("<i", link.target(rel.sym).value + A - P, 32, True)
                return
            G = L.got[("sym", symkey(link.obj, rel.sym))]
            if t == R["GOT64"]:
                link.write(P, "<q", G - L.got_base + A)
            elif t == R["GOTPCREL64"]:
                link.write(P, "<q", G + A - P)
            else:
                put("<i", G + A - P, 32, True)
            return
        if t in (R["SIZE32"], R["SIZE64"]):
            v = link.obj.symbols[rel.sym].size + A
            put("<I", v, 32, False) if t == R["SIZE32"] else link.write(P, "<Q", v)
            return

        tgt = link.target(rel.sym)
        if tgt.kind == "tls":
            raise LinkError(f"{where}: {reloc_name(t)} against thread-local {tgt.name}")
        if t in (R["PLT32"], R["PLTOFF64"]):
            S = L.plt[tgt.value] if tgt.kind == "imp" else tgt.value
            if tgt.kind == "abs":
                raise LinkError(f"{where}: call to absolute symbol {tgt.name}")
            if t == R["PLT32"]:
                put("<i", S + A - P, 32, True)
            else:
                link.write(P, "<q", S - L.got_base + A)
            return
        if t == R["64"]:
            if tgt.kind == "int":
                link.write(P, "<Q", tgt.value + A)
                link.fixup(P, fmt.FX_ABS64, fmt.SYM_BASE, tgt.value + A)
            elif tgt.kind == "imp":
                link.fixup(P, fmt.FX_ABS64, tgt.value, A)
            else:
                link.write(P, "<Q", (tgt.value + A) & (2**64 - 1))
            return
        if t in (R["32"], R["32S"]):
            kind = fmt.FX_ABS32 if t == R["32"] else fmt.FX_ABS32S
            if tgt.kind == "int":
                link.fixup(P, kind, fmt.SYM_BASE, tgt.value + A)
            elif tgt.kind == "imp":
                link.fixup(P, kind, tgt.value, A)
            else:
                put("<I" if t == R["32"] else "<i", tgt.value + A, 32, t == R["32S"])
            return
        if t in (R["PC32"], R["PC64"]):
            if tgt.kind == "int":
                v = tgt.value + A - P
                put("<i", v, 32, True) if t == R["PC32"] else link.write(P, "<q", v)
            elif tgt.kind == "imp":
                link.fixup(P, fmt.FX_PC32 if t == R["PC32"] else fmt.FX_PC64, tgt.value, A)
            else:
                raise LinkError(f"{where}: PC-relative reference to absolute symbol {tgt.name}")
            return
        if t == R["GOTOFF64"]:
            if tgt.kind == "int":
                link.write(P, "<q", tgt.value + A - L.got_base)
            elif tgt.kind == "imp":
                link.fixup(P, fmt.FX_PC64, tgt.value, A + P - L.got_base)
            else:
                link.write(P, "<q", tgt.value + A - L.got_base)
            return
        raise unsupported(link.obj.path, sec.name, rel.offset, t)
