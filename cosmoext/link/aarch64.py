"""AArch64 relocations (AAELF64 names), resolved at build time or turned into fixups.

S: symbol, A: addend, P: place, G: GOT slot, GOT: GOT base, Page(x) = x & ~0xfff.
The image base is page aligned (at least 4 KiB: the image header's align),
so page offsets and the low 12 bits of image addresses are fixed at build
time: every internal reference is resolved here.  References to host
symbols become fixups: through the GOT (``abs64``) where the code allows it
(PIC code, calls via PLT stubs), else instruction fields patched at load time
(``a64-*`` kinds: non-PIC ADRP+ADD/LDR, MOVW).
Local-exec TLS becomes ``a64-*`` fixups against the image's static TLS block
(``SYM_TP``), initial-exec a TPOFF GOT slot, TLS descriptors a 16-byte
``a64-tlsdesc`` GOT pair that the loader points at its own resolver.

Calls (CALL26/JUMP26) reach +-128 MiB: imports go through PLT stubs
``adrp x16, G; ldr x17, [x16, :lo12:G]; br x17`` after the code, internal
targets out of reach through veneers ``adrp x16, S; add x16, x16, :lo12:S;
br x16`` in the same area.  ``ld -r`` has merged all code into one section,
so no stub can sit in the middle of it: a call that needs a stub must come
from the last 128 MiB of the code (a build error names it otherwise).
Generated code never touches x18 or x28 (cosmocc reserves both).
"""

from __future__ import annotations

from .. import format as fmt
from ..errors import LinkError
from . import elf
from .model import LINKER_SYMBOLS, Link, symkey, tls_offset, unsupported_error

R = {
    "NONE": 0, "ABS64": 257, "ABS32": 258, "ABS16": 259, "PREL64": 260, "PREL32": 261,
    "PREL16": 262, "MOVW_UABS_G0": 263, "MOVW_UABS_G0_NC": 264, "MOVW_UABS_G1": 265,
    "MOVW_UABS_G1_NC": 266, "MOVW_UABS_G2": 267, "MOVW_UABS_G2_NC": 268,
    "MOVW_UABS_G3": 269, "MOVW_SABS_G0": 270, "MOVW_SABS_G1": 271, "MOVW_SABS_G2": 272,
    "LD_PREL_LO19": 273, "ADR_PREL_LO21": 274, "ADR_PREL_PG_HI21": 275,
    "ADR_PREL_PG_HI21_NC": 276, "ADD_ABS_LO12_NC": 277, "LDST8_ABS_LO12_NC": 278,
    "TSTBR14": 279, "CONDBR19": 280, "JUMP26": 282, "CALL26": 283,
    "LDST16_ABS_LO12_NC": 284, "LDST32_ABS_LO12_NC": 285, "LDST64_ABS_LO12_NC": 286,
    "MOVW_PREL_G0": 287, "MOVW_PREL_G0_NC": 288, "MOVW_PREL_G1": 289,
    "MOVW_PREL_G1_NC": 290, "MOVW_PREL_G2": 291, "MOVW_PREL_G2_NC": 292,
    "MOVW_PREL_G3": 293, "LDST128_ABS_LO12_NC": 299, "MOVW_GOTOFF_G0": 300,
    "MOVW_GOTOFF_G0_NC": 301, "MOVW_GOTOFF_G1": 302, "MOVW_GOTOFF_G1_NC": 303,
    "MOVW_GOTOFF_G2": 304, "MOVW_GOTOFF_G2_NC": 305, "MOVW_GOTOFF_G3": 306,
    "GOTREL64": 307, "GOTREL32": 308, "GOT_LD_PREL19": 309, "LD64_GOTOFF_LO15": 310,
    "ADR_GOT_PAGE": 311, "LD64_GOT_LO12_NC": 312, "LD64_GOTPAGE_LO15": 313,
    "TLSGD_ADR_PREL21": 512, "TLSGD_ADR_PAGE21": 513, "TLSGD_ADD_LO12_NC": 514,
    "TLSGD_MOVW_G1": 515, "TLSGD_MOVW_G0_NC": 516, "TLSLD_ADR_PREL21": 517,
    "TLSLD_ADR_PAGE21": 518, "TLSLD_ADD_LO12_NC": 519, "TLSLD_MOVW_G1": 520,
    "TLSLD_MOVW_G0_NC": 521, "TLSLD_LD_PREL19": 522, "TLSLD_MOVW_DTPREL_G2": 523,
    "TLSLD_MOVW_DTPREL_G1": 524, "TLSLD_MOVW_DTPREL_G1_NC": 525,
    "TLSLD_MOVW_DTPREL_G0": 526, "TLSLD_MOVW_DTPREL_G0_NC": 527,
    "TLSLD_ADD_DTPREL_HI12": 528, "TLSLD_ADD_DTPREL_LO12": 529,
    "TLSLD_ADD_DTPREL_LO12_NC": 530, "TLSLD_LDST8_DTPREL_LO12": 531,
    "TLSLD_LDST8_DTPREL_LO12_NC": 532, "TLSLD_LDST16_DTPREL_LO12": 533,
    "TLSLD_LDST16_DTPREL_LO12_NC": 534, "TLSLD_LDST32_DTPREL_LO12": 535,
    "TLSLD_LDST32_DTPREL_LO12_NC": 536, "TLSLD_LDST64_DTPREL_LO12": 537,
    "TLSLD_LDST64_DTPREL_LO12_NC": 538, "TLSIE_MOVW_GOTTPREL_G1": 539,
    "TLSIE_MOVW_GOTTPREL_G0_NC": 540, "TLSIE_ADR_GOTTPREL_PAGE21": 541,
    "TLSIE_LD64_GOTTPREL_LO12_NC": 542, "TLSIE_LD_GOTTPREL_PREL19": 543,
    "TLSLE_MOVW_TPREL_G2": 544, "TLSLE_MOVW_TPREL_G1": 545, "TLSLE_MOVW_TPREL_G1_NC": 546,
    "TLSLE_MOVW_TPREL_G0": 547, "TLSLE_MOVW_TPREL_G0_NC": 548,
    "TLSLE_ADD_TPREL_HI12": 549, "TLSLE_ADD_TPREL_LO12": 550,
    "TLSLE_ADD_TPREL_LO12_NC": 551, "TLSLE_LDST8_TPREL_LO12": 552,
    "TLSLE_LDST8_TPREL_LO12_NC": 553, "TLSLE_LDST16_TPREL_LO12": 554,
    "TLSLE_LDST16_TPREL_LO12_NC": 555, "TLSLE_LDST32_TPREL_LO12": 556,
    "TLSLE_LDST32_TPREL_LO12_NC": 557, "TLSLE_LDST64_TPREL_LO12": 558,
    "TLSLE_LDST64_TPREL_LO12_NC": 559, "TLSDESC_LD_PREL19": 560,
    "TLSDESC_ADR_PREL21": 561, "TLSDESC_ADR_PAGE21": 562, "TLSDESC_LD64_LO12": 563,
    "TLSDESC_ADD_LO12": 564, "TLSDESC_OFF_G1": 565, "TLSDESC_OFF_G0_NC": 566,
    "TLSDESC_LDR": 567, "TLSDESC_ADD": 568, "TLSDESC_CALL": 569,
    "TLSLE_LDST128_TPREL_LO12": 570, "TLSLE_LDST128_TPREL_LO12_NC": 571,
    "TLSLD_LDST128_DTPREL_LO12": 572, "TLSLD_LDST128_DTPREL_LO12_NC": 573,
    "COPY": 1024, "GLOB_DAT": 1025, "JUMP_SLOT": 1026, "RELATIVE": 1027,
    "TLS_DTPMOD": 1028, "TLS_DTPREL": 1029, "TLS_TPREL": 1030, "TLSDESC": 1031,
    "IRELATIVE": 1032,
}
NAMES = {v: f"R_AARCH64_{k}" for k, v in R.items()}
NAMES[256] = "R_AARCH64_NONE"  # the withdrawn second spelling of NONE

_UNSUPPORTED = {
    "MOVW_GOTOFF_G0", "MOVW_GOTOFF_G0_NC", "MOVW_GOTOFF_G1", "MOVW_GOTOFF_G1_NC",
    "MOVW_GOTOFF_G2", "MOVW_GOTOFF_G2_NC", "MOVW_GOTOFF_G3", "TLSLD_LD_PREL19",
    "COPY", "GLOB_DAT", "JUMP_SLOT", "RELATIVE", "TLS_DTPMOD", "TLS_DTPREL", "TLS_TPREL",
    "TLSDESC", "IRELATIVE",
}
SUPPORTED = {v for k, v in R.items() if k not in _UNSUPPORTED} | {256}
HINTS = {
    R[k]: "dynamic relocations cannot appear in relocatable objects"
    for k in ("COPY", "GLOB_DAT", "JUMP_SLOT", "RELATIVE", "TLS_DTPMOD", "TLS_DTPREL",
              "TLS_TPREL", "TLSDESC", "IRELATIVE")
}
for _k in ("MOVW_GOTOFF_G0", "MOVW_GOTOFF_G0_NC", "MOVW_GOTOFF_G1", "MOVW_GOTOFF_G1_NC",
           "MOVW_GOTOFF_G2", "MOVW_GOTOFF_G2_NC", "MOVW_GOTOFF_G3"):
    HINTS[R[_k]] = "GOT-relative MOVW sequences are not supported; build with -fPIC or -fno-pic"

BRANCH_RANGE = 1 << 27  # B/BL: +-128 MiB
PLT_ENTRY = 16
VENEER = 16
# Instruction words (x16/x17 are the intra-procedure-call scratch registers).
ADRP_X16 = 0x90000010
LDR_X17_X16 = 0xF9400211  # ldr x17, [x16, #0]
BR_X17 = 0xD61F0220
ADD_X16_X16 = 0x91000210  # add x16, x16, #0
BR_X16 = 0xD61F0200
BRK_1 = 0xD4200020

# Groups of relocation types.
CALLS = (R["CALL26"], R["JUMP26"])
SHORT_BRANCHES = {R["CONDBR19"]: 19, R["TSTBR14"]: 14}
LO12 = {  # type -> (load/store size shift, or None for ADD; overflow-checked)
    R["ADD_ABS_LO12_NC"]: (None, False), R["LDST8_ABS_LO12_NC"]: (0, False),
    R["LDST16_ABS_LO12_NC"]: (1, False), R["LDST32_ABS_LO12_NC"]: (2, False),
    R["LDST64_ABS_LO12_NC"]: (3, False), R["LDST128_ABS_LO12_NC"]: (4, False),
}
TPREL_LO12 = {
    R["TLSLE_ADD_TPREL_LO12"]: (None, True), R["TLSLE_ADD_TPREL_LO12_NC"]: (None, False),
    R["TLSLE_LDST8_TPREL_LO12"]: (0, True), R["TLSLE_LDST8_TPREL_LO12_NC"]: (0, False),
    R["TLSLE_LDST16_TPREL_LO12"]: (1, True), R["TLSLE_LDST16_TPREL_LO12_NC"]: (1, False),
    R["TLSLE_LDST32_TPREL_LO12"]: (2, True), R["TLSLE_LDST32_TPREL_LO12_NC"]: (2, False),
    R["TLSLE_LDST64_TPREL_LO12"]: (3, True), R["TLSLE_LDST64_TPREL_LO12_NC"]: (3, False),
    R["TLSLE_LDST128_TPREL_LO12"]: (4, True), R["TLSLE_LDST128_TPREL_LO12_NC"]: (4, False),
}
DTPREL_LO12 = {
    R["TLSLD_ADD_DTPREL_LO12"]: (None, True), R["TLSLD_ADD_DTPREL_LO12_NC"]: (None, False),
    R["TLSLD_LDST8_DTPREL_LO12"]: (0, True), R["TLSLD_LDST8_DTPREL_LO12_NC"]: (0, False),
    R["TLSLD_LDST16_DTPREL_LO12"]: (1, True), R["TLSLD_LDST16_DTPREL_LO12_NC"]: (1, False),
    R["TLSLD_LDST32_DTPREL_LO12"]: (2, True), R["TLSLD_LDST32_DTPREL_LO12_NC"]: (2, False),
    R["TLSLD_LDST64_DTPREL_LO12"]: (3, True), R["TLSLD_LDST64_DTPREL_LO12_NC"]: (3, False),
    R["TLSLD_LDST128_DTPREL_LO12"]: (4, True),
    R["TLSLD_LDST128_DTPREL_LO12_NC"]: (4, False),
}
# MOVW: type -> (group, check) where check is None (MOVK, no check), "u" or "s".
MOVW_UABS = {
    R["MOVW_UABS_G0"]: (0, "u"), R["MOVW_UABS_G0_NC"]: (0, None),
    R["MOVW_UABS_G1"]: (1, "u"), R["MOVW_UABS_G1_NC"]: (1, None),
    R["MOVW_UABS_G2"]: (2, "u"), R["MOVW_UABS_G2_NC"]: (2, None),
    R["MOVW_UABS_G3"]: (3, None),
}
MOVW_SABS = {R["MOVW_SABS_G0"]: (0, "s"), R["MOVW_SABS_G1"]: (1, "s"),
             R["MOVW_SABS_G2"]: (2, "s")}
MOVW_PREL = {
    R["MOVW_PREL_G0"]: (0, "s"), R["MOVW_PREL_G0_NC"]: (0, None),
    R["MOVW_PREL_G1"]: (1, "s"), R["MOVW_PREL_G1_NC"]: (1, None),
    R["MOVW_PREL_G2"]: (2, "s"), R["MOVW_PREL_G2_NC"]: (2, None),
    R["MOVW_PREL_G3"]: (3, "s"),
}
MOVW_TPREL = {
    R["TLSLE_MOVW_TPREL_G2"]: (2, "s"), R["TLSLE_MOVW_TPREL_G1"]: (1, "s"),
    R["TLSLE_MOVW_TPREL_G1_NC"]: (1, None), R["TLSLE_MOVW_TPREL_G0"]: (0, "s"),
    R["TLSLE_MOVW_TPREL_G0_NC"]: (0, None),
}
MOVW_DTPREL = {
    R["TLSLD_MOVW_DTPREL_G2"]: (2, "s"), R["TLSLD_MOVW_DTPREL_G1"]: (1, "s"),
    R["TLSLD_MOVW_DTPREL_G1_NC"]: (1, None), R["TLSLD_MOVW_DTPREL_G0"]: (0, "s"),
    R["TLSLD_MOVW_DTPREL_G0_NC"]: (0, None),
}
GOT_SYM = (R["ADR_GOT_PAGE"], R["LD64_GOT_LO12_NC"], R["GOT_LD_PREL19"],
           R["LD64_GOTPAGE_LO15"], R["LD64_GOTOFF_LO15"])
GOT_TPREL = (R["TLSIE_ADR_GOTTPREL_PAGE21"], R["TLSIE_LD64_GOTTPREL_LO12_NC"],
             R["TLSIE_LD_GOTTPREL_PREL19"], R["TLSIE_MOVW_GOTTPREL_G1"],
             R["TLSIE_MOVW_GOTTPREL_G0_NC"])
GOT_TLSGD = (R["TLSGD_ADR_PREL21"], R["TLSGD_ADR_PAGE21"], R["TLSGD_ADD_LO12_NC"],
             R["TLSGD_MOVW_G1"], R["TLSGD_MOVW_G0_NC"])
GOT_TLSLD = (R["TLSLD_ADR_PREL21"], R["TLSLD_ADR_PAGE21"], R["TLSLD_ADD_LO12_NC"],
             R["TLSLD_MOVW_G1"], R["TLSLD_MOVW_G0_NC"])
GOT_TLSDESC = (R["TLSDESC_LD_PREL19"], R["TLSDESC_ADR_PREL21"], R["TLSDESC_ADR_PAGE21"],
               R["TLSDESC_LD64_LO12"], R["TLSDESC_ADD_LO12"], R["TLSDESC_OFF_G1"],
               R["TLSDESC_OFF_G0_NC"])
# Markers for linker relaxation; the descriptor sequence is kept as written.
NOPS = (0, 256, R["TLSDESC_LDR"], R["TLSDESC_ADD"], R["TLSDESC_CALL"])


def reloc_name(t: int) -> str:
    return NAMES.get(t, f"R_AARCH64_<{t}>")


def unsupported(where: str, sec: str, offset: int, rtype: int) -> LinkError:
    return unsupported_error(where, sec, offset, reloc_name(rtype), rtype, HINTS.get(rtype))


def _gotkey(obj: elf.ElfObject, rel: elf.Reloc) -> str:
    """GOT entries are per (symbol, addend): G(GDAT(S+A))."""
    key = symkey(obj, rel.sym)
    return key if rel.addend == 0 else f"{key}{rel.addend:+#x}"


def _page(x: int) -> int:
    return x & ~0xFFF


def _lo12_kind(shift: int | None) -> int:
    return fmt.FX_A64_ADD_LO12 if shift is None else fmt.FX_A64_LDST8_LO12 + shift


class _Place:
    """Writes one relocated field at P, with the range checks of AAELF64."""

    def __init__(self, link: Link, P: int, where: str, name: str) -> None:
        self.link, self.P, self.where, self.name = link, P, where, name

    def fail(self, msg: str) -> LinkError:
        return LinkError(f"{self.where}: {self.name}: {msg}")

    def insn(self, mask: int, bits: int) -> None:
        word = self.link.read(self.P, "<I")
        self.link.write(self.P, "<I", (word & ~mask & 0xFFFFFFFF) | (bits & mask))

    def data(self, size: int, v: int, lo: int, hi: int) -> None:
        if not lo <= v < hi:
            raise self.fail(f"value {v:#x} does not fit {8 * size} bits")
        self.link.write(self.P, {2: "<H", 4: "<I", 8: "<Q"}[size], v & ((1 << 8 * size) - 1))

    def branch(self, v: int, bits: int, what: str = "target") -> None:
        lim = 1 << (bits + 1)
        if v & 3:
            raise self.fail(f"{what} offset {v:#x} is not a multiple of 4")
        if not -lim <= v < lim:
            reach = f"{lim >> 20} MiB" if lim >= 1 << 20 else f"{lim >> 10} KiB"
            raise self.fail(f"{what} offset {v:#x} out of the +-{reach} reach")
        if bits == 26:
            self.insn(0x3FFFFFF, v >> 2)
        elif bits == 19:
            self.insn(0x7FFFF << 5, (v >> 2) << 5)
        else:
            self.insn(0x3FFF << 5, (v >> 2) << 5)

    def adr(self, v: int) -> None:
        """ADR (and ADRP with v = page delta >> 12): imm21 in immhi:immlo."""
        if not -(1 << 20) <= v < (1 << 20):
            raise self.fail(f"offset {v:#x} out of the +-1 MiB reach of ADR")
        self.insn((3 << 29) | (0x7FFFF << 5), ((v & 3) << 29) | (((v >> 2) & 0x7FFFF) << 5))

    def adrp(self, target: int, checked: bool = True) -> None:
        d = (_page(target) - _page(self.P)) >> 12
        if checked and not -(1 << 20) <= d < (1 << 20):
            raise self.fail(f"page offset {d << 12:#x} out of the +-4 GiB reach of ADRP")
        self.adr(((d + (1 << 20)) & ((1 << 21) - 1)) - (1 << 20))

    def lo12(self, v: int, shift: int | None, checked: bool) -> None:
        if checked and not 0 <= v < 4096:
            raise self.fail(f"value {v:#x} does not fit 12 bits")
        lo = v & 0xFFF
        sh = shift or 0
        if lo & ((1 << sh) - 1):
            raise self.fail(f"low 12 bits {lo:#x} are not aligned for a {8 << sh}-bit access")
        self.insn(0xFFF << 10, (lo >> sh) << 10)

    def hi12(self, v: int) -> None:
        if not 0 <= v < (1 << 24):
            raise self.fail(f"value {v:#x} does not fit 24 bits")
        self.insn(0xFFF << 10, (v >> 12) << 10)

    def movw(self, v: int, group: int, check: str | None) -> None:
        shift = 16 * group
        if check == "u" and not 0 <= v < (1 << (shift + 16)):
            raise self.fail(f"value {v:#x} does not fit {shift + 16} bits")
        if check == "s":
            if not -(1 << (shift + 16)) <= v < (1 << (shift + 16)):
                raise self.fail(f"value {v:#x} does not fit {shift + 17} signed bits")
            # MOVZ for non-negative values, MOVN (of the inverted value) otherwise.
            opc = 0b10 if v >= 0 else 0b00
            self.insn(3 << 29, opc << 29)
            if v < 0:
                v = ~v
        self.insn(0xFFFF << 5, ((v >> shift) & 0xFFFF) << 5)

    def ld15(self, v: int) -> None:
        if v & 7 or not 0 <= v < (1 << 15):
            raise self.fail(f"GOT offset {v:#x} does not fit the 15-bit scaled field")
        self.insn(0xFFF << 10, (v >> 3) << 10)


class AArch64:
    machine = fmt.EM_AARCH64
    arch = "aarch64"
    emulation = "aarch64linux"
    default_ld = "aarch64-linux-gnu-ld"
    plt_entry_size = PLT_ENTRY
    supported = SUPPORTED
    reloc_name = staticmethod(reloc_name)
    unsupported = staticmethod(unsupported)

    def __init__(self) -> None:
        self.got_sym: dict[tuple[str, object], tuple[int, int]] = {}  # (symbol, addend)
        self.veneers: dict[int, int] = {}  # internal target vaddr -> veneer vaddr
        self.branch_range = BRANCH_RANGE

    # -- pass 1 ------------------------------------------------------------
    def scan(self, link: Link, sec: elf.Section, rel: elf.Reloc) -> list[tuple[str, object]]:
        t = rel.type
        if t not in SUPPORTED:
            raise unsupported(link.obj.path, sec.name, rel.offset, t)
        key = _gotkey(link.obj, rel)
        keys: list[tuple[str, object]] = []
        if t in GOT_SYM:
            keys = [("sym", key)]
        elif t in CALLS or t in SHORT_BRANCHES:
            sym = link.obj.symbols[rel.sym]
            if sym.shndx == elf.SHN_UNDEF and sym.name not in LINKER_SYMBOLS:
                keys = [("sym", symkey(link.obj, rel.sym))]  # the PLT's slot
        elif t in GOT_TPREL:
            keys = [("tpoff", key)]
        elif t in GOT_TLSGD:
            keys = [("tlsgd0", key), ("tlsgd1", key)]
        elif t in GOT_TLSLD:
            keys = [("tlsld0", ""), ("tlsld1", "")]
        elif t in GOT_TLSDESC:
            keys = [("tlsdesc0", key), ("tlsdesc1", key)]
        addend = 0 if t in CALLS or t in SHORT_BRANCHES else rel.addend
        for k in keys:
            self.got_sym.setdefault(k, (rel.sym, addend))
        return keys

    def needs_plt(self, link: Link, rel: elf.Reloc) -> bool:
        return rel.type in CALLS or rel.type in SHORT_BRANCHES

    def place_veneers(self, link: Link, relocs: list[tuple[elf.Section, elf.Reloc]],
                      va: int) -> int:
        """Called once the code is laid out: reserve veneers at ``va`` (after the
        PLT) for calls whose internal target is out of the B/BL reach."""
        L = link.layout
        far: set[int] = set()
        for s, r in relocs:
            if r.type not in CALLS or s.index not in L.sec_vaddr:
                continue
            sym = link.obj.symbols[r.sym]
            if sym.shndx not in L.sec_vaddr or sym.type == elf.STT_GNU_IFUNC:
                continue  # imports (PLT), TLS, data: handled (or refused) in apply
            target = L.sec_vaddr[sym.shndx] + sym.value + r.addend
            if not -self.branch_range <= target - (L.sec_vaddr[s.index] + r.offset) \
                    < self.branch_range:
                far.add(target)
        if far:
            va = (va + 15) & ~15
            for target in sorted(far):
                self.veneers[target] = va
                va += VENEER
        return va

    # -- pass 2 ------------------------------------------------------------
    def write_plt(self, link: Link, stub: int, got_slot: int) -> None:
        self._code(link, stub, [ADRP_X16, LDR_X17_X16, BR_X17, BRK_1])
        p = _Place(link, stub, f"{link.obj.path}: PLT stub", "ADRP")
        p.adrp(got_slot)
        _Place(link, stub + 4, p.where, "LDR").lo12(got_slot, 3, False)

    def _code(self, link: Link, at: int, words: list[int]) -> None:
        for i, w in enumerate(words):
            link.write(at + 4 * i, "<I", w)

    def write_code(self, link: Link) -> None:
        """Veneers are code like the PLT, written after the section contents."""
        for target, at in self.veneers.items():
            self._code(link, at, [ADRP_X16, ADD_X16_X16, BR_X16, BRK_1])
            where = f"{link.obj.path}: veneer"
            _Place(link, at, where, "ADRP").adrp(target)
            _Place(link, at + 4, where, "ADD").lo12(target, None, False)

    def apply(self, link: Link, sec: elf.Section, rel: elf.Reloc, P: int) -> None:
        t, A = rel.type, rel.addend
        L = link.layout
        where = f"{link.obj.path}: section {sec.name} offset {rel.offset:#x}"
        p = _Place(link, P, where, reloc_name(t))
        key = _gotkey(link.obj, rel)

        if t in NOPS:
            return
        # -- GOT-based: the slot is inside the image, so all build-time.
        got_key: tuple[str, object] | None = None
        if t in GOT_SYM:
            got_key = ("sym", key)
        elif t in GOT_TPREL:
            got_key = ("tpoff", key)
        elif t in GOT_TLSGD:
            got_key = ("tlsgd0", key)
        elif t in GOT_TLSLD:
            got_key = ("tlsld0", "")
        elif t in GOT_TLSDESC:
            got_key = ("tlsdesc0", key)
        if got_key is not None:
            G = L.got[got_key]
            if t in (R["ADR_GOT_PAGE"], R["TLSIE_ADR_GOTTPREL_PAGE21"],
                     R["TLSGD_ADR_PAGE21"], R["TLSLD_ADR_PAGE21"], R["TLSDESC_ADR_PAGE21"]):
                p.adrp(G)
            elif t in (R["LD64_GOT_LO12_NC"], R["TLSIE_LD64_GOTTPREL_LO12_NC"],
                       R["TLSDESC_LD64_LO12"]):
                p.lo12(G, 3, False)
            elif t in (R["TLSGD_ADD_LO12_NC"], R["TLSLD_ADD_LO12_NC"], R["TLSDESC_ADD_LO12"]):
                p.lo12(G, None, False)
            elif t in (R["GOT_LD_PREL19"], R["TLSIE_LD_GOTTPREL_PREL19"],
                       R["TLSDESC_LD_PREL19"]):
                p.branch(G - P, 19, "GOT slot")
            elif t in (R["TLSGD_ADR_PREL21"], R["TLSLD_ADR_PREL21"], R["TLSDESC_ADR_PREL21"]):
                p.adr(G - P)
            elif t == R["LD64_GOTPAGE_LO15"]:
                p.ld15(G - _page(L.got_base))
            elif t == R["LD64_GOTOFF_LO15"]:
                p.ld15(G - L.got_base)
            elif t in (R["TLSIE_MOVW_GOTTPREL_G1"], R["TLSGD_MOVW_G1"], R["TLSLD_MOVW_G1"],
                       R["TLSDESC_OFF_G1"]):
                p.movw(G - L.got_base, 1, "s")
            else:  # the G0_NC halves
                p.movw(G - L.got_base, 0, None)
            return

        # -- thread-local: offsets in the image's block.
        if t in TPREL_LO12 or t in MOVW_TPREL or t == R["TLSLE_ADD_TPREL_HI12"]:
            off = tls_offset(link, rel.sym, A)  # T + off is known only at load time
            if t == R["TLSLE_ADD_TPREL_HI12"]:
                link.fixup(P, fmt.FX_A64_ADD_HI12, fmt.SYM_TP, off)
            elif t in TPREL_LO12:
                shift, checked = TPREL_LO12[t]
                link.fixup(P, _lo12_kind(shift) | (fmt.FX_A64_CHECK if checked else 0),
                           fmt.SYM_TP, off)
            else:
                group, check = MOVW_TPREL[t]
                link.fixup(P, fmt.FX_A64_MOVW_G0 + group | (fmt.FX_A64_CHECK if check else 0),
                           fmt.SYM_TP, off)
            return
        if t in DTPREL_LO12:
            shift, checked = DTPREL_LO12[t]
            p.lo12(tls_offset(link, rel.sym, A), shift, checked)
            return
        if t in MOVW_DTPREL:
            group, check = MOVW_DTPREL[t]
            p.movw(tls_offset(link, rel.sym, A), group, check)
            return
        if t == R["TLSLD_ADD_DTPREL_HI12"]:
            p.hi12(tls_offset(link, rel.sym, A))
            return

        tgt = link.target(rel.sym)
        if tgt.kind == "tls":
            raise p.fail(f"reference to thread-local {tgt.name} without a TLS relocation")
        imp = tgt.kind == "imp"
        S = tgt.value  # vaddr (int), import index (imp) or value (abs)
        if tgt.kind == "abs" and S >= 1 << 63:
            S -= 1 << 64  # st_value of a negative absolute symbol

        # -- calls and branches
        if t in CALLS or t in SHORT_BRANCHES:
            bits = 26 if t in CALLS else SHORT_BRANCHES[t]
            if imp:
                stub = L.plt[S]
                p.branch(stub + A - P, bits, f"PLT stub of {tgt.name}")
            elif tgt.kind == "abs":
                raise p.fail(f"branch to absolute symbol {tgt.name}")
            else:
                dest = S + A
                if t in CALLS and not -self.branch_range <= dest - P < self.branch_range:
                    if dest not in self.veneers:  # not code: no veneer was planned
                        raise p.fail(f"call to {tgt.name or 'a local target'} at {dest:#x}, "
                                     "which is out of reach and not code")
                    dest = self.veneers[dest]
                    p.branch(dest - P, bits, f"veneer for {tgt.name or 'a local target'} "
                                             "(code larger than 128 MiB?)")
                else:
                    p.branch(dest - P, bits)
            return
        if t == R["LD_PREL_LO19"]:
            if tgt.kind != "int":
                raise p.fail(f"PC-relative literal load of {tgt.name}, which is not in "
                             "this image")
            p.branch(S + A - P, 19, "literal")
            return
        if t == R["ADR_PREL_LO21"]:
            if tgt.kind != "int":
                raise p.fail(f"ADR of {tgt.name}, which is not in this image (ADR reaches "
                             "+-1 MiB; use ADRP+ADD)")
            p.adr(S + A - P)
            return

        # -- ADRP + low 12 bits (small code model)
        if t in (R["ADR_PREL_PG_HI21"], R["ADR_PREL_PG_HI21_NC"]):
            if imp:  # non-PIC reference to host data: placed within +-4 GiB of it
                link.fixup(P, fmt.FX_A64_ADRP, S, A)
            elif tgt.kind == "abs":
                raise p.fail(f"ADRP of absolute symbol {tgt.name}")
            else:
                p.adrp(S + A, t == R["ADR_PREL_PG_HI21"])
            return
        if t in LO12:
            shift, checked = LO12[t]
            if imp:
                link.fixup(P, _lo12_kind(shift), S, A)
            else:
                p.lo12(S + A, shift, checked)
            return

        # -- MOVZ/MOVK sequences (large code model)
        if t in MOVW_UABS:
            group, check = MOVW_UABS[t]
            if tgt.kind == "abs":
                p.movw(S + A, group, check)
                return
            if check and group == 0:
                raise p.fail(f"{tgt.name or 'the target'} would need an address below 64 KiB")
            kind = fmt.FX_A64_MOVW_G0 + group | (fmt.FX_A64_CHECK if check else 0)
            if imp:
                link.fixup(P, kind, S, A)
            else:
                link.fixup(P, kind, fmt.SYM_BASE, S + A)
            return
        if t in MOVW_SABS:
            if tgt.kind != "abs":
                raise p.fail(f"signed absolute MOVW of {tgt.name}, which is not a constant")
            p.movw(S + A, *MOVW_SABS[t])
            return
        if t in MOVW_PREL:
            if tgt.kind != "int":
                raise p.fail(f"PC-relative MOVW of {tgt.name}, which is not in this image")
            p.movw(S + A - P, *MOVW_PREL[t])
            return

        # -- data
        if t == R["ABS64"]:
            if tgt.kind == "int":
                link.write(P, "<Q", S + A)
                link.fixup(P, fmt.FX_ABS64, fmt.SYM_BASE, S + A)
            elif imp:
                link.fixup(P, fmt.FX_ABS64, S, A)
            else:
                link.write(P, "<Q", (S + A) & (2**64 - 1))
            return
        if t in (R["ABS32"], R["ABS16"]):
            size = 4 if t == R["ABS32"] else 2
            if tgt.kind == "abs":
                p.data(size, S + A, -(1 << (8 * size - 1)), 1 << (8 * size))
            elif size == 2:
                raise p.fail(f"16-bit absolute address of {tgt.name}")
            elif imp:
                link.fixup(P, fmt.FX_ABS32, S, A)
            else:
                link.fixup(P, fmt.FX_ABS32, fmt.SYM_BASE, S + A)
            return
        if t in (R["PREL64"], R["PREL32"], R["PREL16"]):
            size = {R["PREL64"]: 8, R["PREL32"]: 4, R["PREL16"]: 2}[t]
            if tgt.kind == "int":
                half = 1 << (8 * size - 1)
                p.data(size, S + A - P, -half, 2 * half)
            elif imp and size == 8:
                link.fixup(P, fmt.FX_PC64, S, A)
            elif imp and size == 4:
                link.fixup(P, fmt.FX_PC32, S, A)
            else:
                raise p.fail(f"PC-relative reference to {tgt.name}, which is not in this image")
            return
        if t in (R["GOTREL64"], R["GOTREL32"]):
            if tgt.kind != "int":
                raise p.fail(f"GOT-relative reference to {tgt.name}, which is not in this image")
            v = S + A - L.got_base
            if t == R["GOTREL64"]:
                link.write(P, "<q", v)
            else:
                p.data(4, v, -(1 << 31), 1 << 31)
            return
        raise unsupported(link.obj.path, sec.name, rel.offset, t)

