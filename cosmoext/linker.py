"""The cosmoext linker: relocatable objects -> one .cosmoext image.

Pipeline: ``ld -r`` (binutils) merges the inputs into one relocatable object
with a handful of sections, pulling archive members, deduplicating COMDAT
groups and dropping unreferenced sections; this module then lays out
segments, creates GOT slots and PLT stubs, resolves every internal
relocation at build time and turns the rest into normalised fixups
(``format.FX_*``).  The architecture-specific part is a ``Backend``.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from typing import Protocol

from . import ehframe, elf
from . import format as fmt
from .errors import LinkError

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

    def reloc_name(self, rtype: int) -> str: ...

    def unsupported(self, where: str, sec: str, offset: int, rtype: int) -> LinkError: ...

    def fill_got(self, link: Link) -> None: ...

    def scan(self, link: Link, sec: elf.Section, rel: elf.Reloc) -> list[tuple[str, object]]:
        """GOT keys this relocation needs; registers PLT needs via link.imports."""

    def needs_plt(self, link: Link, rel: elf.Reloc) -> bool: ...

    def write_plt(self, link: Link, stub: int, got_slot: int) -> None: ...

    def apply(self, link: Link, sec: elf.Section, rel: elf.Reloc, place: int) -> None: ...


def _classify(sec: elf.Section) -> int | None:
    """Which segment an allocated input section goes to (None: not loaded)."""
    if not sec.alloc or sec.type == 7 or sec.flags & elf.SHF_TLS:  # SHT_NOTE, TLS
        return None
    if sec.flags & elf.SHF_EXECINSTR:
        return fmt.SEG_TEXT
    relro = (sec.name.startswith(".data.rel.ro")
             or sec.type in (elf.SHT_INIT_ARRAY, elf.SHT_FINI_ARRAY)
             or sec.name in (".init_array", ".fini_array", ".preinit_array"))
    if relro:
        return fmt.SEG_RELRO
    if sec.flags & elf.SHF_WRITE:
        return fmt.SEG_DATA
    return fmt.SEG_RODATA


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _write_map(path: str, link: Link, seg_ranges: dict[int, tuple[int, int, int]]) -> None:
    """A link map for debugging: segments, then every named symbol by address."""
    rows = []
    for sym in link.obj.symbols:
        if not sym.name or sym.shndx in (elf.SHN_UNDEF, elf.SHN_ABS) or \
                sym.shndx >= len(link.obj.sections) or sym.type == elf.STT_SECTION:
            continue
        base = link.layout.sec_vaddr.get(sym.shndx)
        if base is not None:
            rows.append((base + sym.value, sym.size, sym.name))
    with open(path, "w") as f:
        for kind, (start, filesz, memsz) in sorted(seg_ranges.items(), key=lambda kv: kv[1]):
            f.write(f"segment {fmt.SEG_NAMES[kind]:6} {start:#010x} memsz {memsz:#x} "
                    f"filesz {filesz:#x}\n")
        for idx, stub in sorted(link.layout.plt.items(), key=lambda kv: kv[1]):
            f.write(f"{stub:#010x} {link.backend.plt_entry_size:6} plt:{link.imports[idx].name}\n")
        for va, size, nm in sorted(rows):
            f.write(f"{va:#010x} {size:6} {nm}\n")


def link_object(obj: elf.ElfObject, backend: Backend, *, name: str, target: str,
                python_abi: str, pic: bool, map_path: str | None = None) -> fmt.Image:
    """Lay out and relocate one merged relocatable object into an Image."""
    if obj.machine != backend.machine:
        raise LinkError(f"{obj.path}: ELF machine {obj.machine}, expected {backend.arch}")
    link = Link(obj, backend, name)
    L = link.layout
    secs = [s for s in obj.sections if s.alloc]
    for s in secs:
        if s.type == elf.SHT_PROGBITS and s.flags & elf.SHF_EXECINSTR and s.flags & elf.SHF_WRITE:
            raise LinkError(f"{obj.path}: section {s.name} is writable and executable")
    loaded = [s for s in secs if _classify(s) is not None]
    by_seg: dict[int, list[elf.Section]] = {k: [] for k in fmt.SEG_NAMES}
    for s in loaded:
        by_seg[_classify(s) or 0].append(s)
    for k in by_seg:  # NOBITS last so the file image stays short
        by_seg[k].sort(key=lambda s: s.type == elf.SHT_NOBITS)

    # Pass 1: which imports, GOT slots and PLT stubs are needed.
    tls_secs = [s for s in secs if s.flags & elf.SHF_TLS]
    tls_off = 0
    tls_align = 1
    for s in sorted(tls_secs, key=lambda s: s.type == elf.SHT_NOBITS):
        tls_off = _align(tls_off, s.align)
        L.tls_off[s.index] = tls_off
        tls_off += s.size
        tls_align = max(tls_align, s.align)
    tdata_size = sum(s.size for s in tls_secs if s.type != elf.SHT_NOBITS)
    tls_memsz = tls_off
    got_keys: dict[tuple[str, object], int] = {}
    plt_imports: set[int] = set()
    relocs = [(s, r) for s in loaded + tls_secs for r in s.relocs if r.type != 0]
    for s, r in relocs:
        for key in backend.scan(link, s, r):
            got_keys.setdefault(key, len(got_keys))
        if backend.needs_plt(link, r):
            sym = obj.symbols[r.sym]
            if sym.shndx == elf.SHN_UNDEF and sym.name not in LINKER_SYMBOLS:
                plt_imports.add(link.import_of(sym))

    # Layout: text (+PLT), rodata (+eh_frame_hdr), relro (+TLS template, GOT), data.
    va = 0
    seg_ranges: dict[int, tuple[int, int, int]] = {}  # kind -> (start, filesz, memsz)
    ehhdr_va = ehhdr_size = 0
    eh_sec = next((s for s in loaded if s.name == ".eh_frame" and s.size), None)
    fde_count = ehframe.count_fdes(eh_sec.data) if eh_sec else 0
    tdata_va = 0
    for kind in (fmt.SEG_TEXT, fmt.SEG_RODATA, fmt.SEG_RELRO, fmt.SEG_DATA):
        start = va
        filesz = 0
        for s in by_seg[kind]:
            va = _align(va, s.align)
            L.sec_vaddr[s.index] = va
            va += s.size
            if s is eh_sec:
                va += 4  # the zero terminator __register_frame_info walks to (crtend's job)
            if s.type != elf.SHT_NOBITS:
                filesz = va - start
        if kind == fmt.SEG_TEXT and plt_imports:
            va = _align(va, 16)
            for idx in sorted(plt_imports):
                L.plt[idx] = va
                va += backend.plt_entry_size
            filesz = va - start
        place_veneers = getattr(backend, "place_veneers", None)  # aarch64: far-call veneers
        if kind == fmt.SEG_TEXT and place_veneers is not None:
            va = place_veneers(link, relocs, va)
            filesz = va - start
        if kind == fmt.SEG_RODATA and eh_sec is not None:
            va = _align(va, 4)
            ehhdr_va, ehhdr_size = va, ehframe.hdr_size(fde_count)
            va += ehhdr_size
            filesz = va - start
        if kind == fmt.SEG_RELRO:
            if tdata_size:
                va = _align(va, tls_align)
                tdata_va = va
                va += tdata_size
            if got_keys:
                va = _align(va, 8)
                L.got_base = va
                for key, n in got_keys.items():
                    L.got[key] = va + 8 * n
                va += 8 * len(got_keys)
            filesz = va - start
        if kind == fmt.SEG_DATA:
            # __dso_handle: a private zero word whose address identifies the image.
            va = _align(va, 8)
            L.dso_handle = va
            va += 8
        if va > start:
            seg_ranges[kind] = (start, filesz, va - start)
            link.seg_base[kind] = start
            link.seg_data[kind] = bytearray(filesz)
            va = fmt.align_up(va)

    # Copy section contents into the segment buffers.
    for kind, ss in by_seg.items():
        for s in ss:
            if s.type != elf.SHT_NOBITS and s.size:
                off = L.sec_vaddr[s.index] - link.seg_base[kind]
                link.seg_data[kind][off:off + s.size] = s.data
    if tdata_size:
        off = tdata_va - link.seg_base[fmt.SEG_RELRO]
        for s in tls_secs:
            if s.type != elf.SHT_NOBITS:
                o = off + L.tls_off[s.index]
                link.seg_data[fmt.SEG_RELRO][o:o + s.size] = s.data

    # Pass 2: PLT stubs, GOT contents, relocations.
    for idx, stub in L.plt.items():
        backend.write_plt(link, stub, L.got[("sym", link.imports[idx].name)])
    backend.fill_got(link)
    for s, r in relocs:
        if s.flags & elf.SHF_TLS:
            if s.type == elf.SHT_NOBITS:
                raise LinkError(f"{obj.path}: relocation in {s.name}, a NOBITS section")
            place = tdata_va + L.tls_off[s.index] + r.offset
        else:
            place = L.sec_vaddr[s.index] + r.offset
        if r.offset >= s.size:
            raise LinkError(f"{obj.path}: section {s.name}: relocation offset {r.offset:#x} "
                            "outside the section")
        backend.apply(link, s, r, place)

    if eh_sec is not None:
        eh_va = L.sec_vaddr[eh_sec.index]
        eh_off = eh_va - link.seg_base[fmt.SEG_RODATA]
        eh_bytes = bytes(link.seg_data[fmt.SEG_RODATA][eh_off:eh_off + eh_sec.size])
        t0, _tf, tm = seg_ranges[fmt.SEG_TEXT]
        hdr = ehframe.build_hdr(eh_bytes, eh_va, ehhdr_va, fde_count, text=(t0, t0 + tm))
        off = ehhdr_va - link.seg_base[fmt.SEG_RODATA]
        link.seg_data[fmt.SEG_RODATA][off:off + len(hdr)] = hdr

    entry_name = f"PyInit_{name}"
    entry = None
    for sym in obj.symbols:
        if sym.name == entry_name and sym.bind != elf.STB_LOCAL and sym.shndx != elf.SHN_UNDEF:
            t = link.target(sym.index)
            entry = t.value if t.kind == "int" else None
    if entry is None:
        found = sorted({s.name for s in obj.symbols if s.name.startswith("PyInit_")
                        and s.shndx != elf.SHN_UNDEF})
        hint = f" (found {', '.join(found)}: is --name right?)" if found else ""
        raise LinkError(f"{obj.path}: no definition of {entry_name}{hint}")
    text = seg_ranges.get(fmt.SEG_TEXT)
    if text is None or not text[0] <= entry < text[0] + text[2]:
        raise LinkError(f"{obj.path}: {entry_name} is not in a code section")

    def section_range(secname: str) -> tuple[int, int]:
        s = next((s for s in loaded if s.name == secname and s.size), None)
        return (L.sec_vaddr[s.index], s.size) if s else (0, 0)

    init_va, init_sz = section_range(".init_array")
    fini_va, fini_sz = section_range(".fini_array")
    if any(s.name == ".preinit_array" and s.size for s in loaded):
        raise LinkError(f"{obj.path}: .preinit_array is not allowed in an extension")
    for f in link.fixups:
        link.flags |= _flag_for(f, link)
    if pic:
        link.flags |= fmt.F_PIC
    segments = [fmt.Segment(kind, start, memsz, bytes(link.seg_data[kind]))
                for kind, (start, _filesz, memsz) in seg_ranges.items()]
    if map_path:
        _write_map(map_path, link, seg_ranges)
    return fmt.Image(
        arch=backend.machine, target=target, python_abi=python_abi, name=name,
        entry=entry, segments=segments, imports=link.imports, fixups=link.fixups,
        flags=link.flags, init_array=(init_va, init_sz // 8),
        fini_array=(fini_va, fini_sz // 8),
        eh_frame=section_range(".eh_frame"), eh_frame_hdr=(ehhdr_va, ehhdr_size),
        tls=(tdata_va, tdata_size, tls_memsz, tls_align) if tls_memsz else (0, 0, 0, 0),
    )


def _flag_for(f: fmt.Fixup, link: Link) -> int:
    host = f.sym < len(link.imports)
    if f.sym == fmt.SYM_TP:
        return fmt.F_STATIC_TLS
    if f.kind in (fmt.FX_PC32, fmt.FX_A64_ADRP) and host:
        return fmt.F_NEAR_HOST
    if f.kind == fmt.FX_A64_MOVW_G1 | fmt.FX_A64_CHECK:  # the value must fit 32 bits
        return fmt.F_LOW_HOST if host else fmt.F_LOW_IMAGE
    if f.kind in (fmt.FX_ABS32, fmt.FX_ABS32S):
        return fmt.F_LOW_HOST if host else fmt.F_LOW_IMAGE
    if f.kind in (fmt.FX_TPOFF32, fmt.FX_TPOFF64):
        return fmt.F_STATIC_TLS
    if f.kind in (fmt.FX_DTPMOD64, fmt.FX_A64_TLSDESC):
        return fmt.F_DYNAMIC_TLS
    return 0


# -- driver ---------------------------------------------------------------

def merge(inputs: list[str], *, ld: str, entry: str, out: str, emulation: str,
          verbose: bool = False) -> None:
    """Run ``ld -r`` with cosmoext's merge script over objects and archives."""
    script = resources.files("cosmoext") / "data" / "merge.ld"
    objs = [i for i in inputs if not i.endswith(".a")]
    archives = [i for i in inputs if i.endswith(".a")]
    for i in inputs:
        if not os.path.exists(i):
            raise LinkError(f"{i}: no such file")
    cmd = [ld, "-m", emulation, "-r", "--force-group-allocation", "-d", "-S",
           "--gc-sections", "-e", entry, "-T", str(script), "-o", out, *objs]
    if archives:
        cmd += ["--start-group", *archives, "--end-group"]
    if verbose:
        print("+ " + " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise LinkError(f"{ld}: not found (install binutils for this architecture)") from e
    if proc.returncode:
        msg = proc.stderr.strip().splitlines()
        raise LinkError(f"ld -r failed: {msg[0] if msg else proc.returncode}\n  command: "
                        + " ".join(cmd) + ("\n" + proc.stderr if len(msg) > 1 else ""))


def link(inputs: list[str], *, name: str, arch: str = "x86_64", target: str = "linux-gnu",
         python_abi: str, pic: bool = True, ld: str | None = None,
         verbose: bool = False, map_path: str | None = None) -> fmt.Image:
    """Link objects and archives into one Image for ``arch``.

    ``map_path`` (or $COSMOEXT_MAP_DIR/NAME.ARCH.map) gets a link map."""
    if map_path is None and os.environ.get("COSMOEXT_MAP_DIR"):
        map_path = os.path.join(os.environ["COSMOEXT_MAP_DIR"], f"{name}.{arch}.map")
    from .backends import get_backend

    backend = get_backend(arch)
    entries: set[str] = set()
    for path in inputs:
        if not path.endswith(".a") and os.path.exists(path):
            entries |= _prescan(path, backend)
    entry = f"PyInit_{name}"
    if entry not in entries and not any(i.endswith(".a") for i in inputs[:1]):
        hint = f" (found {', '.join(sorted(entries))}: is --name right?)" if entries else ""
        shown = ", ".join(os.path.basename(i) for i in inputs if not i.endswith(".a"))
        raise LinkError(f"no definition of {entry} in {shown}{hint}")
    with tempfile.TemporaryDirectory(prefix="cosmoext-ld-") as tmp:
        merged = os.path.join(tmp, "merged.o")
        merge(inputs, ld=ld or backend.default_ld, entry=f"PyInit_{name}", out=merged,
              emulation=backend.emulation, verbose=verbose)
        obj = elf.read(merged)
    obj.path = ", ".join(os.path.basename(i) for i in inputs[:3]) + (
        ", ..." if len(inputs) > 3 else "")
    return link_object(obj, backend, name=name, target=target, python_abi=python_abi, pic=pic,
                       map_path=map_path)


def _prescan(path: str, backend: Backend) -> set[str]:
    """Name the input object when it holds a relocation we cannot handle;
    return the PyInit_* functions it defines."""
    obj = elf.read(path)
    if obj.machine != backend.machine:
        raise LinkError(f"{path}: ELF machine {obj.machine} is not {backend.arch}")
    for sec in obj.sections:
        for r in sec.relocs:
            if r.type not in backend.supported:
                raise backend.unsupported(path, sec.name, r.offset, r.type)
    return {s.name for s in obj.symbols if s.name.startswith("PyInit_")
            and s.shndx != elf.SHN_UNDEF and s.bind != elf.STB_LOCAL}
