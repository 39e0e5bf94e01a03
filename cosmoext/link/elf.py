"""A minimal reader for ELF64 little-endian relocatable objects (ET_REL).

Only what the linker needs: section headers, the symbol table and RELA
relocations.  Anything outside that shape is a LinkError naming the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import LinkError

ET_REL = 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 1, 2, 3, 4
SHT_NOBITS, SHT_REL, SHT_INIT_ARRAY, SHT_FINI_ARRAY = 8, 9, 14, 15
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_TLS = 0x1, 0x2, 0x4, 0x400
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_TLS = 0, 1, 2, 3, 4, 6
STT_GNU_IFUNC = 10

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")


@dataclass
class Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    entsize: int
    data: bytes = b""
    relocs: list[Reloc] = field(default_factory=list)

    @property
    def alloc(self) -> bool:
        return bool(self.flags & SHF_ALLOC)


@dataclass
class Symbol:
    index: int
    name: str
    value: int
    size: int
    bind: int
    type: int
    shndx: int
    visibility: int


@dataclass
class Reloc:
    offset: int
    type: int
    sym: int
    addend: int


@dataclass
class ElfObject:
    path: str
    machine: int
    sections: list[Section]
    symbols: list[Symbol]


def read(path: str, data: bytes | None = None) -> ElfObject:
    if data is None:
        with open(path, "rb") as f:
            data = f.read()

    def bad(why: str) -> LinkError:
        return LinkError(f"{path}: {why}")

    if len(data) < _EHDR.size or data[:4] != b"\x7fELF":
        raise bad("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise bad("not a 64-bit little-endian ELF object")
    (_, etype, machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
     shstrndx) = _EHDR.unpack_from(data, 0)
    if etype != ET_REL:
        raise bad(f"ELF type {etype} is not a relocatable object (ET_REL)")
    if shentsize != _SHDR.size or shoff + shnum * shentsize > len(data):
        raise bad("section header table out of bounds")
    sections = []
    for i in range(shnum):
        (name, stype, flags, _, off, size, link, info, align,
         entsize) = _SHDR.unpack_from(data, shoff + i * shentsize)
        if stype != SHT_NOBITS and off + size > len(data):
            raise bad(f"section {i} out of bounds")
        body = b"" if stype == SHT_NOBITS else data[off:off + size]
        sections.append(Section(i, str(name), stype, flags, off, size, link, info,
                                max(align, 1), entsize, body))
    if shstrndx >= shnum:
        raise bad("bad section name table index")
    names = sections[shstrndx].data

    def cstr(tab: bytes, off: int) -> str:
        end = tab.find(b"\0", off)
        return tab[off:end if end >= 0 else len(tab)].decode("utf-8", "replace")

    for s in sections:
        s.name = cstr(names, int(s.name))
    symbols: list[Symbol] = []
    symtabs = [s for s in sections if s.type == SHT_SYMTAB]
    if len(symtabs) > 1:
        raise bad("more than one symbol table")
    if symtabs:
        st = symtabs[0]
        strtab = sections[st.link].data
        for k in range(st.size // _SYM.size):
            name, info, other, shndx, value, size = _SYM.unpack_from(st.data, k * _SYM.size)
            symbols.append(Symbol(k, cstr(strtab, name), value, size, info >> 4,
                                  info & 0xF, shndx, other & 3))
    for s in sections:
        if s.type == SHT_REL:
            raise bad(f"section {s.name}: REL relocations are not supported (need RELA)")
        if s.type != SHT_RELA:
            continue
        if s.info >= len(sections):
            raise bad(f"section {s.name}: bad target section")
        target = sections[s.info]
        for k in range(s.size // _RELA.size):
            off, info, addend = _RELA.unpack_from(s.data, k * _RELA.size)
            sym = info >> 32
            if sym >= len(symbols):
                raise bad(f"section {s.name}: relocation {k} names symbol {sym} out of range")
            target.relocs.append(Reloc(off, info & 0xFFFFFFFF, sym, addend))
    return ElfObject(path, machine, sections, symbols)
