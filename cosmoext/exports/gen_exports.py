#!/usr/bin/env python3
"""Generate the cosmoext export table as a C source file.

The table lists every symbol an extension image may import: the Python C API
(every defined global ``Py*``/``_Py*``/``PY*``/``_PY*`` symbol of the given
``--python-lib`` files) plus those names of the curated ``--libc-list`` that
are defined in one of the ``--libc-lib`` files (all listed names if no
``--libc-lib`` is given). Symbols are read with ``nm --defined-only -f sysv``:
``-D`` for shared objects and executables (falling back to the regular symbol
table when that is empty), the regular table for archives; GNU ld scripts
such as glibc's ``libc.so``/``libm.a`` are followed through GROUP/INPUT.
Thread-local symbols, non-default symbol versions (``name@VER``) and
``*PRIVATE`` versions are skipped: a plain C reference cannot bind to them.

The output declares each symbol as ``extern char NAME;`` and stores ``&NAME``
in ``cx_exports[]``, sorted by (GNU hash, name) for ``cx_export_find`` in
``cosmoext/runtime/cxexports.h``. Compile it with ``-fno-builtin``: GCC
otherwise warns about every libc builtin it sees declared as ``char``.

``--lazy`` (host builds, compiled with ``-DCX_EXPORTS_LAZY=1``) stores only
(hash, offset of the name in one string blob): no relocation per symbol when
the runtime is dlopened; the runtime looks a name up with ``dlsym`` on first
use.  Names defined only in archives given as libraries (libc_nonshared.a's
``atexit``, which dlsym cannot see) keep a static ``&NAME``.

usage: gen_exports.py --out exports.c [--python-lib PATH]...
                      [--libc-list libc.txt] [--libc-lib PATH]... [--nm NM] [--lazy]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

PY_PREFIXES = ("Py", "_Py", "PY", "_PY")
# The loader implements these itself or never lets images reach them.
RESERVED = frozenset(
    {
        "dlopen", "dlmopen", "dlsym", "dlvsym", "dlclose", "dlerror",
        "dladdr", "dladdr1", "dlinfo",
        "__tls_get_addr", "_dl_find_object", "dl_iterate_phdr",
    }
)  # fmt: skip
# nm classes of defined global symbols (lowercase t/d/b/r/... are local).
# "i" is STT_GNU_IFUNC; --no-ifunc leaves those out (Cosmopolitan: taking an
# ifunc's address from data makes ld emit a canonical PLT entry whose slot
# only an IRELATIVE processor would fill, and cosmo has none; the runtime's
# own names table has plain wrappers for them, cxhost.c).
GLOBAL_CLASSES = frozenset("BCDGRSTVWiu")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# GROUP(...) / INPUT(...) bodies of GNU ld scripts, allowing one AS_NEEDED(...).
SCRIPT_INPUTS = re.compile(r"\b(?:GROUP|INPUT)\s*\(((?:[^()]|\([^()]*\))*)\)")


class GenError(Exception):
    """A fatal, user-facing error (reported on one line, exit status 2)."""


def gnu_hash(name: str) -> int:
    """Return the GNU ELF hash of *name* (``h = h * 33 + c``, from 5381)."""
    h = 5381
    for byte in name.encode():
        h = (h * 33 + byte) & 0xFFFFFFFF
    return h


def _run_nm(nm: str, path: Path, *, dynamic: bool,
            members: re.Pattern[str] | None = None, ifunc: bool = True) -> set[str]:
    """Return the linkable defined global symbol names ``nm`` reports
    (only those of archive members whose name matches ``members``, if given)."""
    cmd = [nm, "--defined-only", "-f", "sysv", *(["-D"] if dynamic else []), str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GenError(f"cannot run {nm}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no diagnostics"])[-1]
        raise GenError(f"{nm} failed on {path} (exit {proc.returncode}): {detail}")
    names: set[str] = set()
    member = ""
    for line in proc.stdout.splitlines():
        m = re.match(r"Symbols from .*\[(.*)\]:$", line.strip())
        if m:
            member = m.group(1)
            continue
        if members is not None and not members.fullmatch(member):
            continue
        fields = line.split("|")
        if len(fields) < 7:
            continue  # headers, blank lines, "Symbols from x.a[y.o]:"
        name, cls, typ = fields[0].strip(), fields[2].strip(), fields[3].strip()
        if cls not in GLOBAL_CLASSES or typ == "TLS" or (cls == "i" and not ifunc):
            continue
        name, _, version = name.partition("@")
        if version and (not version.startswith("@") or "PRIVATE" in version):
            continue  # hidden/compat version or glibc-internal symbol
        if IDENT.fullmatch(name):
            names.add(name)
    return names


def _script_inputs(path: Path) -> list[Path]:
    """Return the files named by GROUP/INPUT in a GNU ld script (e.g. libm.a)."""
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(errors="replace"), flags=re.DOTALL)
    inputs: list[Path] = []
    for body in SCRIPT_INPUTS.findall(text):
        for token in re.findall(r"[^\s(),]+", body):
            if token == "AS_NEEDED":
                continue
            if token.startswith("-l"):
                raise GenError(f"{path}: cannot resolve {token} in linker script")
            inputs.append(path.parent / token)  # absolute tokens replace the base
    return inputs


def library_symbols(nm: str, path: Path, seen: frozenset[Path] = frozenset(),
                    ifunc: bool = True, archived: set[str] | None = None) -> set[str]:
    """Return the defined global symbols of an archive, ELF file or ld script
    (and add those of archives, and ELF files without dynamic symbols, to
    ``archived``: names only a static link can reach)."""
    if not path.is_file():
        raise GenError(f"library not found: {path}")
    with path.open("rb") as f:
        magic = f.read(8)
    names: set[str] = set()
    if magic in (b"!<arch>\n", b"!<thin>\n"):
        static = names = _run_nm(nm, path, dynamic=False, ifunc=ifunc)
    else:
        is_script = not magic.startswith(b"\x7fELF") and path not in seen
        if is_script and (inputs := _script_inputs(path)):
            seen |= {path}
            return set().union(*(library_symbols(nm, p, seen, ifunc, archived)
                                 for p in inputs))
        static = set()
        names = _run_nm(nm, path, dynamic=True, ifunc=ifunc)
        if not names:
            static = names = _run_nm(nm, path, dynamic=False, ifunc=ifunc)
    if archived is not None:
        archived |= static
    return names


def read_libc_list(path: Path) -> list[str]:
    """Parse the curated list: one name per line, ``#`` comments, no duplicates kept."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise GenError(f"cannot read {path}: {exc.strerror or exc}") from exc
    names: dict[str, None] = {}
    for lineno, raw in enumerate(lines, 1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        if not IDENT.fullmatch(name):
            raise GenError(f"{path}:{lineno}: not a C identifier: {name!r}")
        if name in RESERVED:
            raise GenError(f"{path}:{lineno}: {name} is reserved for the loader")
        names[name] = None
    return list(names)


def render(names: Iterable[str]) -> str:
    """Return the C source defining ``cx_exports`` / ``cx_export_count``."""
    entries = sorted((gnu_hash(n), n) for n in set(names))
    out = [
        "/* generated by gen_exports.py: do not edit */",
        "#include <stddef.h>",
        "#include <stdint.h>",
        '#include "cxexports.h"',
        "#if CX_EXPORTS_LAZY",
        '#error "a static export table: compile without CX_EXPORTS_LAZY"',
        "#endif",
    ]
    out += [f"extern char {n};" for n in sorted(n for _, n in entries)]
    out.append("const struct cx_export cx_exports[] = {")
    out += [f'  {{0x{h:08x}u, "{n}", &{n}}},' for h, n in entries]
    out.append("};")
    out.append(f"const size_t cx_export_count = {len(entries)};")
    return "\n".join(out) + "\n"


def render_lazy(names: Iterable[str], static: Iterable[str]) -> str:
    """Return the C source of a lazy table: (hash, name offset) entries, the
    name blob, the address cache, and the linker's addresses of ``static``
    names (``cx_export_fixed``, ended by a NULL address)."""
    entries = sorted((gnu_hash(n), n) for n in set(names))
    fixed = set(static)
    out = [
        "/* generated by gen_exports.py --lazy: do not edit */",
        "#include <stddef.h>",
        "#include <stdint.h>",
        '#include "cxexports.h"',
        "#if !CX_EXPORTS_LAZY",
        '#error "a lazy export table: compile with -DCX_EXPORTS_LAZY=1"',
        "#endif",
    ]
    out += [f"extern char {n};" for n in sorted(fixed)]
    out.append("const char cx_export_names[] =")
    offsets, at = [], 0
    for _, n in entries:
        out.append(f'  "{n}\\0"')
        offsets.append(at)
        at += len(n) + 1
    out[-1] += ";"
    if at >= 2**32:
        raise GenError("export names exceed 4 GiB")
    out.append("const struct cx_export cx_exports[] = {")
    out += [f"  {{0x{h:08x}u, {off}u}}," for (h, _), off in zip(entries, offsets, strict=True)]
    out.append("};")
    # Set by cx_exports_init (cxhost.c) to a populated mapping; NULL: no cache.
    out.append("const void **cx_export_cache;")
    out.append("const void *(*cx_export_lookup)(const char *, uint32_t);")
    out.append("const struct cx_export_fixed cx_export_fixed[] = {")
    out += [f"  {{{i}u, &{n}}}," for i, (_, n) in enumerate(entries) if n in fixed]
    out.append("  {0u, NULL},")
    out.append("};")
    out.append(f"const size_t cx_export_count = {len(entries)};")
    return "\n".join(out) + "\n"


def generate(args: argparse.Namespace) -> str:
    """Collect the symbols named by *args*, write the output, return the summary."""
    listed = list(dict.fromkeys(n for p in args.libc_list for n in read_libc_list(p)))
    python: set[str] = set()
    archived: set[str] = set()  # defined in archives: static addresses in a lazy table
    for lib in args.python_lib:
        python |= {n for n in library_symbols(args.nm, lib, archived=archived)
                   if n.startswith(PY_PREFIXES)}
    if not python:
        raise GenError("no Python symbols found in the --python-lib files")

    whole: set[str] = set()
    if args.member:
        pat = re.compile(args.member)
        for lib in args.libc_lib:
            whole |= _run_nm(args.nm, lib, dynamic=False, members=pat,
                             ifunc=not args.no_ifunc) - RESERVED
    if args.name_pattern:
        named = re.compile(args.name_pattern)
        for lib in args.libc_lib:
            whole |= {n for n in library_symbols(args.nm, lib, ifunc=not args.no_ifunc)
                      if named.fullmatch(n)} - RESERVED
    if args.libc_lib:
        defined: set[str] = set()
        for lib in args.libc_lib:
            defined |= library_symbols(args.nm, lib, ifunc=not args.no_ifunc,
                                       archived=archived)
        found = [n for n in listed if n in defined]
    else:
        found = listed
    libc = [n for n in dict.fromkeys([*found, *sorted(whole)]) if n not in python]

    names = [*python, *libc]
    # A name in an archive gets the linker's address even if a shared library
    # has a compat version too (pthread_atfork): dlsym would not find that one.
    text = render_lazy(names, archived.intersection(names)) if args.lazy else render(names)
    try:
        args.out.write_text(text)
    except OSError as exc:
        raise GenError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    return (
        f"gen_exports: {len(python)} python symbols, {len(libc)} libc symbols "
        f"({len(listed) - len(found)} listed names not in the given libraries)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="gen_exports.py", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="C file to write")
    ap.add_argument("--python-lib", type=Path, action="append", default=[], metavar="PATH")
    ap.add_argument("--libc-list", type=Path, action="append", default=[], metavar="libc.txt",
                    help="curated names (repeatable: lists are joined)")
    ap.add_argument("--libc-lib", type=Path, action="append", default=[], metavar="PATH")
    ap.add_argument("--nm", default="nm", help="nm program (default: nm)")
    ap.add_argument("--name-pattern", metavar="REGEX",
                    help="also export every defined global of --libc-lib whose name matches "
                    "(e.g. compiler helpers such as __udivti3)")
    ap.add_argument("--no-ifunc", action="store_true",
                    help="leave out GNU indirect functions of --libc-lib (Cosmopolitan)")
    ap.add_argument("--member", metavar="REGEX",
                    help="also export every defined global of --libc-lib archive members "
                    "whose name matches (e.g. Cosmopolitan's libcxxabi + libunwind objects)")
    ap.add_argument("--lazy", action="store_true",
                    help="names and hashes only, resolved with dlsym on first use (host "
                    "builds; compile with -DCX_EXPORTS_LAZY=1)")
    args = ap.parse_args(argv)
    if args.libc_lib and not args.libc_list:
        ap.error("--libc-lib requires --libc-list")
    try:
        summary = generate(args)
    except GenError as exc:
        print(f"gen_exports: error: {exc}", file=sys.stderr)
        return 2
    print(summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
