"""Just enough of a Mach-O 64 reader to check objects that clang made for
macOS (tests/test_macos_compile.py): the CPU type, the symbol table and the
__TEXT,__text section's bytes and relocation count."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MH_MAGIC_64 = 0xFEEDFACF
CPU_TYPE_X86_64 = 0x01000007
CPU_TYPE_ARM64 = 0x0100000C
LC_SEGMENT_64 = 0x19
LC_SYMTAB = 0x2
N_EXT = 0x01
N_TYPE = 0x0E
N_UNDF = 0x0


@dataclass
class Section:
    segname: str
    sectname: str
    addr: int
    size: int
    offset: int
    nreloc: int


@dataclass
class MachO:
    cputype: int
    sections: list[Section] = field(default_factory=list)
    defined: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (sect, value)
    undefined: set[str] = field(default_factory=set)
    data: bytes = b""

    def section(self, segname: str, sectname: str) -> Section:
        for s in self.sections:
            if (s.segname, s.sectname) == (segname, sectname):
                return s
        raise KeyError(f"{segname},{sectname}")

    def symbol_bytes(self, name: str, size: int) -> bytes:
        """size bytes of section contents starting at the defined symbol name."""
        sect, value = self.defined[name]
        s = self.sections[sect - 1]
        start = s.offset + (value - s.addr)
        assert value - s.addr + size <= s.size, "symbol range runs past its section"
        return self.data[start:start + size]


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode()


def read(path: str) -> MachO:
    with open(path, "rb") as f:
        data = f.read()
    magic, cputype, _sub, _ftype, ncmds, _size, _flags, _res = struct.unpack_from("<8I", data, 0)
    if magic != MH_MAGIC_64:
        raise ValueError(f"{path}: not a 64-bit Mach-O file (magic {magic:#x})")
    m = MachO(cputype=cputype, data=data)
    off = 32
    symtab = None
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<2I", data, off)
        if cmd == LC_SEGMENT_64:
            nsects = struct.unpack_from("<I", data, off + 64)[0]
            for k in range(nsects):
                s = off + 72 + 80 * k
                sectname, segname = _cstr(data[s:s + 16]), _cstr(data[s + 16:s + 32])
                addr, size = struct.unpack_from("<2Q", data, s + 32)
                offset, _align, _reloff, nreloc = struct.unpack_from("<4I", data, s + 48)
                m.sections.append(Section(segname, sectname, addr, size, offset, nreloc))
        elif cmd == LC_SYMTAB:
            symtab = struct.unpack_from("<4I", data, off + 8)
        off += cmdsize
    if symtab:
        symoff, nsyms, stroff, _strsize = symtab
        for k in range(nsyms):
            strx, ntype, nsect, _desc, value = struct.unpack_from("<IBBHQ", data, symoff + 16 * k)
            name = _cstr(data[stroff + strx:stroff + strx + 512])
            if (ntype & N_TYPE) == N_UNDF:
                if ntype & N_EXT:
                    m.undefined.add(name)
            elif nsect:
                m.defined[name] = (nsect, value)
    return m
