"""Layout and relocation: one merged relocatable object -> one ``format.Image``.

Stages of ``link_object``: scan relocations for GOT/PLT needs, lay out the
segments (text+PLT+veneers, rodata+``.eh_frame_hdr``, relro+TLS
template+GOT, data), copy section contents, write linker-made code and the
GOT, apply relocations (internal ones resolved now, the rest become
normalised fixups), then describe the image.  The architecture-specific part
is a ``model.Backend``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import format as fmt
from ..errors import LinkError
from . import ehframe, elf
from .model import LINKER_SYMBOLS, Backend, Link, fill_got


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


@dataclass
class _Plan:
    """What pass 1 found and where layout put it."""

    loaded: list[elf.Section]
    by_seg: dict[int, list[elf.Section]]
    tls_secs: list[elf.Section]
    relocs: list[tuple[elf.Section, elf.Reloc]]
    got_keys: dict[tuple[str, object], int] = field(default_factory=dict)
    plt_imports: set[int] = field(default_factory=set)
    tdata_size: int = 0
    tls_memsz: int = 0
    tls_align: int = 1
    tdata_va: int = 0
    eh_sec: elf.Section | None = None
    ehhdr_va: int = 0
    ehhdr_size: int = 0
    fde_count: int = 0
    seg_ranges: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # start, file, mem


def _sections(link: Link) -> _Plan:
    obj = link.obj
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
    tls_secs = [s for s in secs if s.flags & elf.SHF_TLS]
    relocs = [(s, r) for s in loaded + tls_secs for r in s.relocs if r.type != 0]
    return _Plan(loaded, by_seg, tls_secs, relocs)


def _assign_tls(link: Link, plan: _Plan) -> None:
    """The image's TLS block: initialised sections first, then zeroed ones."""
    off = 0
    for s in sorted(plan.tls_secs, key=lambda s: s.type == elf.SHT_NOBITS):
        off = _align(off, s.align)
        link.layout.tls_off[s.index] = off
        off += s.size
        plan.tls_align = max(plan.tls_align, s.align)
    plan.tdata_size = sum(s.size for s in plan.tls_secs if s.type != elf.SHT_NOBITS)
    plan.tls_memsz = off


def _scan(link: Link, plan: _Plan) -> None:
    """Pass 1: which imports, GOT slots and PLT stubs are needed."""
    for s, r in plan.relocs:
        for key in link.backend.scan(link, s, r):
            plan.got_keys.setdefault(key, len(plan.got_keys))
        if link.backend.needs_plt(link, r):
            sym = link.obj.symbols[r.sym]
            if sym.shndx == elf.SHN_UNDEF and sym.name not in LINKER_SYMBOLS:
                plan.plt_imports.add(link.import_of(sym))


def _lay_out(link: Link, plan: _Plan) -> None:
    """Addresses: text (+PLT, veneers), rodata (+eh_frame_hdr), relro (+TLS
    template, GOT), data (+__dso_handle); each segment starts on a new page."""
    L = link.layout
    plan.eh_sec = next((s for s in plan.loaded if s.name == ".eh_frame" and s.size), None)
    plan.fde_count = ehframe.count_fdes(plan.eh_sec.data) if plan.eh_sec else 0
    va = 0
    for kind in (fmt.SEG_TEXT, fmt.SEG_RODATA, fmt.SEG_RELRO, fmt.SEG_DATA):
        start = va
        filesz = 0
        for s in plan.by_seg[kind]:
            va = _align(va, s.align)
            L.sec_vaddr[s.index] = va
            va += s.size
            if s is plan.eh_sec:
                va += 4  # the zero terminator __register_frame_info walks to (crtend's job)
            if s.type != elf.SHT_NOBITS:
                filesz = va - start
        if kind == fmt.SEG_TEXT:
            if plan.plt_imports:
                va = _align(va, 16)
                for idx in sorted(plan.plt_imports):
                    L.plt[idx] = va
                    va += link.backend.plt_entry_size
            va = link.backend.place_veneers(link, plan.relocs, va)
            filesz = va - start
        elif kind == fmt.SEG_RODATA and plan.eh_sec is not None:
            va = _align(va, 4)
            plan.ehhdr_va, plan.ehhdr_size = va, ehframe.hdr_size(plan.fde_count)
            va += plan.ehhdr_size
            filesz = va - start
        elif kind == fmt.SEG_RELRO:
            if plan.tdata_size:
                va = _align(va, plan.tls_align)
                plan.tdata_va = va
                va += plan.tdata_size
            if plan.got_keys:
                va = _align(va, 8)
                L.got_base = va
                for key, n in plan.got_keys.items():
                    L.got[key] = va + 8 * n
                va += 8 * len(plan.got_keys)
            filesz = va - start
        elif kind == fmt.SEG_DATA:
            # __dso_handle: a private zero word whose address identifies the image.
            va = _align(va, 8)
            L.dso_handle = va
            va += 8
        if va > start:
            plan.seg_ranges[kind] = (start, filesz, va - start)
            link.seg_base[kind] = start
            link.seg_data[kind] = bytearray(filesz)
            va = fmt.align_up(va)


def _copy_contents(link: Link, plan: _Plan) -> None:
    L = link.layout
    for kind, ss in plan.by_seg.items():
        for s in ss:
            if s.type != elf.SHT_NOBITS and s.size:
                off = L.sec_vaddr[s.index] - link.seg_base[kind]
                link.seg_data[kind][off:off + s.size] = s.data
    if plan.tdata_size:
        off = plan.tdata_va - link.seg_base[fmt.SEG_RELRO]
        for s in plan.tls_secs:
            if s.type != elf.SHT_NOBITS:
                o = off + L.tls_off[s.index]
                link.seg_data[fmt.SEG_RELRO][o:o + s.size] = s.data


def _relocate(link: Link, plan: _Plan) -> None:
    """Pass 2: PLT stubs, veneers, GOT contents, then every relocation."""
    L = link.layout
    for idx, stub in L.plt.items():
        link.backend.write_plt(link, stub, L.got[("sym", link.imports[idx].name)])
    link.backend.write_code(link)
    fill_got(link, link.backend.got_sym)
    for s, r in plan.relocs:
        if r.offset >= s.size:
            raise LinkError(f"{link.obj.path}: section {s.name}: relocation offset "
                            f"{r.offset:#x} outside the section")
        if s.flags & elf.SHF_TLS:
            if s.type == elf.SHT_NOBITS:
                raise LinkError(f"{link.obj.path}: relocation in {s.name}, a NOBITS section")
            place = plan.tdata_va + L.tls_off[s.index] + r.offset
        else:
            place = L.sec_vaddr[s.index] + r.offset
        link.backend.apply(link, s, r, place)


def _write_eh_frame_hdr(link: Link, plan: _Plan) -> None:
    if plan.eh_sec is None:
        return
    rodata = link.seg_data[fmt.SEG_RODATA]
    eh_va = link.layout.sec_vaddr[plan.eh_sec.index]
    eh_off = eh_va - link.seg_base[fmt.SEG_RODATA]
    eh_bytes = bytes(rodata[eh_off:eh_off + plan.eh_sec.size])
    t0, _tf, tm = plan.seg_ranges[fmt.SEG_TEXT]
    hdr = ehframe.build_hdr(eh_bytes, eh_va, plan.ehhdr_va, plan.fde_count, text=(t0, t0 + tm))
    off = plan.ehhdr_va - link.seg_base[fmt.SEG_RODATA]
    rodata[off:off + len(hdr)] = hdr


def _entry(link: Link, plan: _Plan) -> int:
    """Address of PyInit_<name>, which must be code of this image."""
    obj = link.obj
    entry_name = f"PyInit_{link.name}"
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
    text = plan.seg_ranges.get(fmt.SEG_TEXT)
    if text is None or not text[0] <= entry < text[0] + text[2]:
        raise LinkError(f"{obj.path}: {entry_name} is not in a code section")
    return entry


def link_object(obj: elf.ElfObject, backend: Backend, *, name: str, target: str,
                python_abi: str, pic: bool, map_path: str | None = None) -> fmt.Image:
    """Lay out and relocate one merged relocatable object into an Image."""
    if obj.machine != backend.machine:
        raise LinkError(f"{obj.path}: ELF machine {obj.machine}, expected {backend.arch}")
    link = Link(obj, backend, name)
    plan = _sections(link)
    _assign_tls(link, plan)
    _scan(link, plan)
    _lay_out(link, plan)
    _copy_contents(link, plan)
    _relocate(link, plan)
    _write_eh_frame_hdr(link, plan)
    entry = _entry(link, plan)
    if any(s.name == ".preinit_array" and s.size for s in plan.loaded):
        raise LinkError(f"{obj.path}: .preinit_array is not allowed in an extension")

    def section_range(secname: str) -> tuple[int, int]:
        s = next((s for s in plan.loaded if s.name == secname and s.size), None)
        return (link.layout.sec_vaddr[s.index], s.size) if s else (0, 0)

    init_va, init_sz = section_range(".init_array")
    fini_va, fini_sz = section_range(".fini_array")
    for f in link.fixups:
        link.flags |= _flag_for(f, link)
    if pic:
        link.flags |= fmt.F_PIC
    # The base must keep every section aligned; a page at least, because
    # internal references (aarch64 ADRP) were resolved assuming that.
    align = max([fmt.MIN_BASE_ALIGN, *(s.align for s in plan.loaded)])
    if align > fmt.ALIGN:
        raise LinkError(f"{obj.path}: a section is aligned to {align:#x} bytes; "
                        f"at most {fmt.ALIGN:#x} is supported")
    if map_path:
        _write_map(map_path, link, plan.seg_ranges)
    return fmt.Image(
        arch=backend.machine, target=target, python_abi=python_abi, name=name,
        entry=entry, segments=[fmt.Segment(kind, start, memsz, bytes(link.seg_data[kind]))
                               for kind, (start, _filesz, memsz) in plan.seg_ranges.items()],
        imports=link.imports, fixups=link.fixups, flags=link.flags,
        init_array=(init_va, init_sz // 8), fini_array=(fini_va, fini_sz // 8),
        eh_frame=section_range(".eh_frame"), eh_frame_hdr=(plan.ehhdr_va, plan.ehhdr_size),
        tls=((plan.tdata_va, plan.tdata_size, plan.tls_memsz, plan.tls_align)
             if plan.tls_memsz else (0, 0, 0, 0)),
        align=1 << (align - 1).bit_length(),
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
