"""cosmoext/runtime/cxformat.h (the loader's view of the format) and
cosmoext/format.py (the linker's) must agree, name by name and field by field.

The header is parsed here: every #define, every enumerator and every struct
(field offsets computed with C layout rules, checked against the header's
own offset comments) is compared with its counterpart in format.py, and
every upper-case name of format.py must be accounted for.  A name on either
side without a counterpart fails the test unless it is listed below with
the reason it exists on one side only.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

import cosmoext.format as fmt

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "cosmoext" / "runtime"
HEADER = RUNTIME / "cxformat.h"
VALIDATE_C = RUNTIME / "cxvalidate.c"  # holds the loader's segment kind -> protection table

# Names on one side only, each with its reason.
C_ONLY = {
    "CX_MAX_SEGMENTS": "loader limit (the linker emits one segment per kind)",
    "CX_MAX_VSIZE": "loader limit on an image's address space",
    "CX_MAX_IMPORTS": "loader limit",
    "CX_MAX_FIXUPS": "loader limit",
    "CX_MAX_INIT": "loader limit on .init_array/.fini_array entries",
}
PY_ONLY: dict[str, str] = {}
# C struct -> format.py struct.Struct; CX_*_SIZE -> that Struct's size.
STRUCTS = {
    "cx_file_hdr": ("FILE_HDR", "CX_FILE_HDR_SIZE"),
    "cx_image_ent": ("IMAGE_ENT", "CX_IMAGE_ENT_SIZE"),
    "cx_image_hdr": ("IMAGE_HDR", "CX_IMAGE_HDR_SIZE"),
    "cx_segment": ("SEGMENT", "CX_SEGMENT_SIZE"),
    "cx_import": ("IMPORT", "CX_IMPORT_SIZE"),
    "cx_fixup": ("FIXUP", "CX_FIXUP_SIZE"),
}
C_TYPES = {"char": 1, "uint8_t": 1, "uint16_t": 2, "uint32_t": 4, "uint64_t": 8, "int64_t": 8}
STRUCT_CODES = {"uint16_t": "H", "uint32_t": "I", "uint64_t": "Q", "int64_t": "q"}


@dataclass
class Field:
    name: str
    ctype: str
    count: int  # array length, 1 for scalars
    offset: int
    comment_offset: int | None  # what the header's comment says, if anything

    @property
    def size(self) -> int:
        return C_TYPES[self.ctype] * self.count


@dataclass
class Header:
    guard: str
    defines: dict[str, object]  # evaluated: int or str
    enum: dict[str, int]
    structs: dict[str, list[Field]]


def _c_int(expr: str, env: dict[str, object]) -> int:
    """Evaluate a C integer constant expression (suffixes, shifts, |, names)."""
    py = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr)
    for name in sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", py)), key=len, reverse=True):
        if name not in env:
            raise ValueError(f"unknown name {name} in {expr!r}")
        py = re.sub(rf"\b{name}\b", str(env[name]), py)
    if not re.fullmatch(r"[0-9a-fA-Fx()<>|&+\-*~\s]+", py):
        raise ValueError(f"not a constant expression: {expr!r}")
    return int(eval(" ".join(py.split()), {"__builtins__": {}}))  # noqa: S307 (digits and operators only)


def parse_header(text: str) -> Header:
    guard = re.search(r"#ifndef\s+(\w+)\s*\n#define\s+\1\s*\n", text)
    assert guard, "cxformat.h: no include guard"
    defines: dict[str, object] = {}
    env: dict[str, object] = {}
    for m in re.finditer(r"^#define\s+(\w+)(?:[ \t]+(.*?))?\s*(?:/\*.*?\*/)?\s*$", text, re.M):
        name, value = m.group(1), m.group(2)
        if name == guard.group(1):
            assert not value, f"{name}: the include guard has a value"
        elif value and value.startswith('"'):
            defines[name] = value.strip('"')
        else:
            defines[name] = env[name] = _c_int(value or "", env)
    enum: dict[str, int] = {}
    body = re.search(r"enum\s+\w+\s*\{(.*?)\};", text, re.S)
    assert body, "cxformat.h: no enum of fixup kinds"
    for m in re.finditer(r"(\w+)\s*=\s*([^,\n]+?)\s*,",
                         re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)):
        enum[m.group(1)] = env[m.group(1)] = _c_int(m.group(2), env)
    structs = {}
    for m in re.finditer(r"^struct\s+(\w+)\s*\{(.*?)\n\};", text, re.S | re.M):
        fields: list[Field] = []
        off = 0
        # comments on lines of their own go; a declaration's own comment stays
        body = re.sub(r"^[ \t]*/\*.*?\*/[ \t]*\n", "", m.group(2) + "\n", flags=re.S | re.M)
        for line in body.splitlines():
            line = line.strip()
            if not line:
                continue
            d = re.fullmatch(r"(\w+)\s+([^;]+);\s*(?:/\*\s*([\d, ]+?)\s*\*/)?", line)
            assert d, f"struct {m.group(1)}: cannot parse {line!r}"
            ctype, names, comment = d.group(1), d.group(2), d.group(3)
            assert ctype in C_TYPES, f"struct {m.group(1)}: unknown type {ctype}"
            declared = [n.strip() for n in names.split(",")]
            offsets = [int(x) for x in comment.split(",")] if comment else []
            assert len(offsets) in (0, 1, len(declared)), f"offset comment of {line!r}"
            for k, decl in enumerate(declared):
                a = re.fullmatch(r"(\w+)(?:\[(\w+)\])?", decl)
                assert a, f"struct {m.group(1)}: cannot parse {decl!r}"
                count = _c_int(a.group(2), env) if a.group(2) else 1
                align = C_TYPES[ctype]
                off = (off + align - 1) // align * align
                said = offsets[k] if k < len(offsets) else None
                fields.append(Field(a.group(1), ctype, count, off, said))
                off += C_TYPES[ctype] * count
        structs[m.group(1)] = fields
    return Header(guard.group(1), defines, enum, structs)


def struct_items(st: struct.Struct) -> list[tuple[int, int, str]]:
    """(offset, size, code) for every item of a little-endian, unaligned format;
    'Ns' is one item, 'Nx' is one padding item, 'NI' is N items."""
    assert st.format[0] == "<", st.format
    items, off = [], 0
    for count, code in re.findall(r"(\d*)([xcbB?hHiIlLqQnNefdsp])", st.format[1:]):
        n = int(count) if count else 1
        if code in "sx":
            items.append((off, n, f"{n}{code}"))
            off += n
        else:
            size = struct.calcsize("<" + code)
            for _ in range(n):
                items.append((off, size, code))
                off += size
    assert off == st.size
    return items


def compare_struct(fields: list[Field], st: struct.Struct) -> tuple[list[str], int]:
    """Mismatches between a C struct and a format.py Struct, and how many C
    fields matched.  A reserved field may be padding or any items that tile it."""
    problems, matched = [], 0
    items = struct_items(st)
    used: set[int] = set()
    end = fields[-1].offset + fields[-1].size if fields else 0
    if end != st.size:
        problems.append(f"size: C {end}, format.py {st.size}")
    for f in fields:
        if f.comment_offset is not None and f.comment_offset != f.offset:
            problems.append(f"{f.name}: at offset {f.offset}, the header's comment says "
                            f"{f.comment_offset}")
        span = [k for k, (o, _, _) in enumerate(items) if f.offset <= o < f.offset + f.size]
        used.update(span)
        got = [items[k] for k in span]
        if not got or got[0][0] != f.offset or got[-1][0] + got[-1][1] != f.offset + f.size:
            problems.append(f"{f.name}: C bytes [{f.offset}, {f.offset + f.size}) do not line "
                            f"up with format.py items {got}")
            continue
        if not f.name.startswith("reserved"):
            if f.ctype in ("char", "uint8_t"):
                want = f"{f.count}s"
            else:
                want = STRUCT_CODES[f.ctype] if f.count == 1 else f"{f.ctype}[{f.count}]"
            if [code for _, _, code in got] != [want]:
                problems.append(f"{f.name}: C {f.ctype}[{f.count}] at {f.offset} is {want!r}, "
                                f"format.py has {[code for _, _, code in got]}")
                continue
        matched += 1
    for k, item in enumerate(items):
        if k not in used:
            problems.append(f"format.py item {item} lies in no C field")
    return problems, matched


def _py_names() -> dict[str, object]:
    return {n: v for n, v in vars(fmt).items() if re.fullmatch(r"[A-Z][A-Z0-9_]*", n)}


def _seg_prot_table(header: Header) -> dict[int, int]:
    """The loader's kind -> protection table (cxvalidate.c want_prot[])."""
    m = re.search(r"want_prot\[\]\s*=\s*\{([^}]*)\}", VALIDATE_C.read_text())
    assert m, f"{VALIDATE_C.name}: no want_prot[] table"
    env = {**{k: v for k, v in header.defines.items() if isinstance(v, int)}, **header.enum}
    values = [_c_int(v, env) for v in m.group(1).split(",")]
    return {kind: prot for kind, prot in enumerate(values) if kind}


def check(header: Header) -> tuple[list[str], dict[str, int]]:
    """Every disagreement, and the counts of names compared on each side."""
    problems: list[str] = []
    py = _py_names()
    py_seen: set[str] = set()
    c_names = [n for n in header.defines if n != header.guard] + list(header.enum)
    c_seen: set[str] = set()
    sizes = {size: pyname for pyname, size in STRUCTS.values()}

    # Constants: CX_NAME <-> NAME, sizes <-> Struct.size, a few C-only names.
    for name in c_names:
        value = header.defines.get(name, header.enum.get(name))
        if name in C_ONLY:
            c_seen.add(name)
            continue
        if name == "CX_F_REQUIREMENTS":  # every flag but the informational F_PIC
            want = 0
            for pyname in py:
                if pyname.startswith("F_") and pyname != "F_PIC":
                    want |= py[pyname]
            if value != want:
                problems.append(f"{name} = {value:#x}, format.py's placement flags give "
                                f"{want:#x}")
            c_seen.add(name)
            continue
        if name in sizes:
            pyname = sizes[name]
            pyvalue: object = py[pyname].size if pyname in py else None
        else:
            pyname = name.removeprefix("CX_")
            pyvalue = py.get(pyname)
            if isinstance(value, str):
                value = value.encode()
        if pyname not in py:
            problems.append(f"{name}: no {pyname} in format.py")
            continue
        if value != pyvalue:
            problems.append(f"{name} = {value!r}, format.py {pyname} = {pyvalue!r}")
        c_seen.add(name)
        py_seen.add(pyname)

    # Structs, field by field.
    for cname, (pyname, _) in STRUCTS.items():
        if cname not in header.structs:
            problems.append(f"struct {cname}: not in cxformat.h")
            continue
        if pyname not in py:
            problems.append(f"struct {cname}: no {pyname} in format.py")
            continue
        struct_problems, compared = compare_struct(header.structs[cname], py[pyname])
        problems += [f"struct {cname} / {pyname}: {p}" for p in struct_problems]
        if compared != len(header.structs[cname]):
            problems.append(f"struct {cname}: {compared} of {len(header.structs[cname])} "
                            "fields compared")
        py_seen.add(pyname)
    for cname in header.structs:
        if cname not in STRUCTS:
            problems.append(f"struct {cname}: no format.py counterpart listed in STRUCTS")

    # format.py's tables: their keys are exactly the constants of their kind.
    env = {**header.defines, **header.enum}
    kinds = list(header.enum.values())
    checked = set(range(env["CX_FX_A64_ADD_LO12"], env["CX_FX_A64_MOVW_G3"] + 1))
    tables = {
        "ARCH_NAMES": lambda t: set(t) == {v for k, v in env.items() if k.startswith("CX_EM_")},
        "ARCH_IDS": lambda t: set(t.values()) == {v for k, v in env.items()
                                                  if k.startswith("CX_EM_")},
        "FLAG_NAMES": lambda t: set(t) == {v for k, v in env.items() if k.startswith("CX_F_")
                                           and k != "CX_F_REQUIREMENTS"},
        "SEG_NAMES": lambda t: set(t) == {v for k, v in env.items() if k.startswith("CX_SEG_")},
        "SEG_PROT": lambda t: dict(t) == _seg_prot_table(header),
        "FIXUP_NAMES": lambda t: set(t) == set(kinds) | {k | env["CX_FX_A64_CHECK"]
                                                         for k in checked},
    }
    for pyname, ok in tables.items():
        if pyname in py:  # (a table format.py no longer has cannot disagree)
            if not ok(py[pyname]):
                problems.append(f"format.py {pyname} disagrees with cxformat.h")
            py_seen.add(pyname)

    for pyname in PY_ONLY:
        if pyname in py:
            py_seen.add(pyname)
    for pyname in py:
        if pyname not in py_seen:
            problems.append(f"format.py {pyname}: no counterpart in cxformat.h")
    for name in c_names:
        if name not in c_seen and not any(p.startswith(name) for p in problems):
            problems.append(f"{name}: not compared")
    counts = {"c": len(c_seen), "c_total": len(c_names), "py": len(py_seen), "py_total": len(py)}
    return problems, counts


@pytest.fixture(scope="module")
def header() -> Header:
    return parse_header(HEADER.read_text())


def test_header_parses_completely(header: Header) -> None:
    text = HEADER.read_text()
    # every #define and enumerator of the header was read
    assert len(header.defines) + 1 == len(re.findall(r"^#define\s", text, re.M))  # + guard
    assert len(header.enum) == len(re.findall(r"^\s+CX_FX_\w+\s*=", text, re.M))
    assert set(header.structs) == set(re.findall(r"^struct\s+(\w+)\s*\{", text, re.M))
    for fields in header.structs.values():
        assert fields
    # and offsets were checked against the comments of most fields
    commented = sum(f.comment_offset is not None for fs in header.structs.values() for f in fs)
    assert commented >= 50


def test_cxformat_h_agrees_with_format_py(header: Header) -> None:
    problems, counts = check(header)
    assert not problems, "\n".join(problems)
    assert counts["c"] == counts["c_total"]
    assert counts["py"] == counts["py_total"]


@pytest.mark.parametrize("old, new, expect", [
    ("CX_FX_PC32 = 4,", "CX_FX_PC32 = 9,", "CX_FX_PC32 = 9"),
    ("#define CX_SYM_TP 0xfffffffdu", "#define CX_SYM_TP 0xfffffffcu", "CX_SYM_TP"),
    ("#define CX_IMAGE_MAGIC \"CXIM\"", "#define CX_IMAGE_MAGIC \"CXIN\"", "CX_IMAGE_MAGIC"),
    ("uint32_t tls_align;     /* 176 */", "uint64_t tls_align;     /* 176 */", "tls_align"),
    ("uint8_t reserved[20];   /* 44 */", "uint8_t reserved[12];   /* 44 */", "size: C 56"),
    ("uint32_t crc32c;    /* 4 */", "uint64_t crc32c;    /* 4 */", "crc32c"),
    ("#define CX_HEAD_CRC_AT 40", "#define CX_HEAD_CRC_AT 44", "CX_HEAD_CRC_AT"),
    ("#define CX_VERSION_MAJOR 2", "#define CX_VERSION_MAJOR 1", "CX_VERSION_MAJOR"),
    ("#define CX_FILE_ALIGN 16u", "#define CX_FILE_ALIGN 8u", "CX_FILE_ALIGN"),
    ("int64_t addend; /* 16 */", "uint64_t addend; /* 16 */", "addend"),
    ("uint16_t header_size;   /* 6 */", "uint16_t header_size;   /* 7 */", "comment says 7"),
    ("#define CX_F_REQUIREMENTS 0x3eu", "#define CX_F_REQUIREMENTS 0x3fu", "CX_F_REQUIREMENTS"),
    ("#define CX_EM_AARCH64 183\n", "#define CX_EM_AARCH64 183\n#define CX_EM_RISCV 243\n",
     "CX_EM_RISCV"),
])
def test_the_check_catches_drift(old: str, new: str, expect: str) -> None:
    text = HEADER.read_text()
    assert old in text, old
    try:
        problems, _ = check(parse_header(text.replace(old, new)))
    except AssertionError as e:  # the parser itself refuses it
        problems = [str(e)]
    assert any(expect in p for p in problems), problems
