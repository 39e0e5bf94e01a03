"""The link model shared by the layout pass and the architecture backends.

``Link`` holds one link's state (the merged object, imports, fixups, GOT and
PLT addresses, output buffers); ``Backend`` is what an architecture provides.
Backends import this module, never the driver.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Protocol

from .. import format as fmt
from ..errors import LinkError
from . import elf

# Provided by the linker itself, never imported.
LINKER_SYMBOLS = ("_GLOBAL_OFFSET_TABLE_", "__dso_handle", "_DYNAMIC")


@dataclass
class Target:
    """Where a relocation points: image vaddr, import index, TLS offset or constant."""

    kind: str  # "int" | "imp" | "tls" | "abs"
    value: int  # vaddr, import index, TLS block offset, or absolute value
    name: str


@dataclass
class Layout:
    """Addresses assigned to input sections and linker-made areas."""

    sec_vaddr: dict[int, int] = field(default_factory=dict)
    tls_off: dict[int, int] = field(default_factory=dict)  # TLS section -> block offset
    got: dict[tuple[str, object], int] = field(default_factory=dict)  # key -> vaddr
    got_base: int = 0
    plt: dict[int, int] = field(default_factory=dict)  # import index -> stub vaddr
    dso_handle: int = 0


class Link:
    """State of one link: the merged object, symbols, imports, output buffers."""

    def __init__(self, obj: elf.ElfObject, backend: Backend, name: str) -> None:
        self.obj = obj
        self.backend = backend
        self.name = name
        self.imports: list[fmt.Import] = []
        self.import_index: dict[str, int] = {}
        self.fixups: list[fmt.Fixup] = []
        self.flags = 0
        self.layout = Layout()
        self.seg_data: dict[int, bytearray] = {}
        self.seg_base: dict[int, int] = {}

    # -- symbols ---------------------------------------------------------
    def import_of(self, sym: elf.Symbol) -> int:
        idx = self.import_index.get(sym.name)
        weak = sym.bind != elf.STB_GLOBAL
        if idx is None:
            idx = self.import_index[sym.name] = len(self.imports)
            self.imports.append(fmt.Import(sym.name, weak))
        elif not weak:
            self.imports[idx].weak = False
        return idx

    def target(self, symidx: int) -> Target:
        sym = self.obj.symbols[symidx]
        if sym.shndx == elf.SHN_UNDEF:
            if sym.name == "_GLOBAL_OFFSET_TABLE_":
                return Target("int", self.layout.got_base, sym.name)
            if sym.name == "__dso_handle":
                return Target("int", self.layout.dso_handle, sym.name)
            if sym.name == "_DYNAMIC":
                return Target("abs", 0, sym.name)
            if not sym.name:
                raise LinkError(f"{self.obj.path}: relocation against undefined null symbol")
            if sym.visibility in (1, 2):  # hidden/internal must be defined here
                raise LinkError(f"{self.obj.path}: hidden symbol {sym.name} is not defined")
            return Target("imp", self.import_of(sym), sym.name)
        if sym.shndx == elf.SHN_ABS:
            return Target("abs", sym.value, sym.name)
        if sym.shndx >= len(self.obj.sections):
            raise LinkError(f"{self.obj.path}: symbol {sym.name} in unsupported section "
                            f"{sym.shndx:#x}")
        sec = self.obj.sections[sym.shndx]
        if sec.flags & elf.SHF_TLS:
            return Target("tls", self.layout.tls_off[sec.index] + sym.value, sym.name)
        if sec.index not in self.layout.sec_vaddr:
            raise LinkError(f"{self.obj.path}: symbol {sym.name or sec.name} lies in "
                            f"non-loaded section {sec.name}")
        if sym.type == elf.STT_GNU_IFUNC:
            raise LinkError(f"{self.obj.path}: {sym.name}: GNU indirect functions (ifunc) "
                            "are not supported")
        return Target("int", self.layout.sec_vaddr[sec.index] + sym.value, sym.name)

    # -- output ----------------------------------------------------------
    def write(self, vaddr: int, fmt_: str, value: int) -> None:
        for kind, base in self.seg_base.items():
            buf = self.seg_data[kind]
            if base <= vaddr < base + len(buf):
                struct.pack_into(fmt_, buf, vaddr - base, value)
                return
        raise LinkError(f"internal: write outside file-backed segments at {vaddr:#x}")

    def read(self, vaddr: int, fmt_: str) -> int:
        for kind, base in self.seg_base.items():
            buf = self.seg_data[kind]
            if base <= vaddr < base + len(buf):
                return int(struct.unpack_from(fmt_, buf, vaddr - base)[0])
        raise LinkError(f"internal: read outside file-backed segments at {vaddr:#x}")

    def fixup(self, vaddr: int, kind: int, sym: int, addend: int) -> None:
        self.fixups.append(fmt.Fixup(vaddr, kind, sym, addend))

    def got_slot(self, key: tuple[str, object]) -> int:
        return self.layout.got[key]


def symkey(obj: elf.ElfObject, idx: int) -> str:
    """Key of a symbol for GOT slots: its name if global, else its index."""
    sym = obj.symbols[idx]
    return sym.name if sym.bind != elf.STB_LOCAL and sym.name else f"#{idx}"


def unsupported_error(where: str, sec: str, offset: int, name: str, rtype: int,
                      hint: str | None) -> LinkError:
    """The one message for a relocation a backend cannot handle."""
    return LinkError(f"{where}: section {sec} offset {offset:#x}: unsupported relocation "
                     f"{name} ({rtype})" + (f": {hint}" if hint else ""))


class Backend(Protocol):
    machine: int
    arch: str
    emulation: str
    default_ld: str
    plt_entry_size: int
    supported: set[int]
    # GOT key -> (symbol index, addend) of the entry, filled by scan().
    got_sym: dict[tuple[str, object], tuple[int, int]]

    def reloc_name(self, rtype: int) -> str: ...

    def unsupported(self, where: str, sec: str, offset: int, rtype: int) -> LinkError: ...

    def scan(self, link: Link, sec: elf.Section, rel: elf.Reloc) -> list[tuple[str, object]]:
        """GOT keys this relocation needs (recorded in ``got_sym``)."""

    def needs_plt(self, link: Link, rel: elf.Reloc) -> bool: ...

    def place_veneers(self, link: Link, relocs: list[tuple[elf.Section, elf.Reloc]],
                      va: int) -> int:
        """Reserve far-call veneers at ``va`` after the code; returns the new end."""

    def write_plt(self, link: Link, stub: int, got_slot: int) -> None: ...

    def write_code(self, link: Link) -> None:
        """Linker-made code other than PLT stubs (veneers), after contents are copied."""

    def apply(self, link: Link, sec: elf.Section, rel: elf.Reloc, place: int) -> None: ...


TLS_MODULE_BASE = "_TLS_MODULE_BASE_"


def tls_offset(link: Link, symidx: int, addend: int) -> int:
    """Offset of a thread-local variable in the image's TLS block."""
    sym = link.obj.symbols[symidx]
    if sym.shndx == elf.SHN_UNDEF and sym.name == TLS_MODULE_BASE:
        return addend  # the start of this module's block (aarch64 local-dynamic)
    t = link.target(symidx)
    if t.kind != "tls":
        raise LinkError(f"{link.obj.path}: TLS relocation against {t.name or 'a symbol'}, "
                        "which is not a thread-local variable of this image"
                        + (" (thread-local variables of the host cannot be imported)"
                           if t.kind == "imp" else ""))
    return t.value + addend


def fill_got(link: Link, got_sym: dict[tuple[str, object], tuple[int, int]]) -> None:
    """Write every GOT entry, or the fixup that fills it at load time."""
    for key, vaddr in link.layout.got.items():
        kind = key[0]
        symidx, A = got_sym[key]
        if kind == "sym":
            t = link.target(symidx)
            if t.kind == "int":
                link.write(vaddr, "<Q", t.value + A)
                link.fixup(vaddr, fmt.FX_ABS64, fmt.SYM_BASE, t.value + A)
            elif t.kind == "imp":
                link.fixup(vaddr, fmt.FX_ABS64, t.value, A)
            elif t.kind == "abs":
                link.write(vaddr, "<Q", (t.value + A) & (2**64 - 1))
            else:
                raise LinkError(f"{link.obj.path}: GOT entry for thread-local {t.name} "
                                "without a TLS relocation")
        elif kind in ("tlsgd0", "tlsld0"):
            link.fixup(vaddr, fmt.FX_DTPMOD64, fmt.SYM_NONE, 0)
        elif kind == "tlsgd1":
            link.write(vaddr, "<Q", tls_offset(link, symidx, A))
        elif kind == "tlsld1":
            link.write(vaddr, "<Q", 0)
        elif kind == "tpoff":
            link.fixup(vaddr, fmt.FX_TPOFF64, fmt.SYM_NONE, tls_offset(link, symidx, A))
        elif kind == "tlsdesc0":  # 16 bytes with the next slot: {resolver, argument}
            link.fixup(vaddr, fmt.FX_A64_TLSDESC, fmt.SYM_NONE, tls_offset(link, symidx, A))
