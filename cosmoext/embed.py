"""``cosmoext embed``: link a static, non-PIE interpreter with the loader built in.

Inputs: a ``libpython*.a``, the builtin-module table of that build
(``config.c`` beside it, as Debian ships it) and that build's headers.  The
result is a CPython executable with no dynamic loading at all, in which
``cosmoext._runtime`` is a builtin module, the export table is generated
from exactly that libpython and libc, the static TLS reserve exists, and the
``.cosmoext`` finder is active at start-up (the pure-Python half of cosmoext
is a zip appended to the executable).  With cosmocc and a Cosmopolitan
libpython the same steps make a ``python.com`` (not verified here).
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ._proc import run_tool, write_atomic
from .errors import CosmoextError, ToolchainError
from .settings import Settings
from .toolchain import TRIPLETS, get_toolchain, host_arch


def runtime_sources() -> list[str]:
    """The runtime's C sources (cosmoext/runtime/sources.txt, which CMake reads too)."""
    text = (Path(__file__).parent / "runtime" / "sources.txt").read_text()
    return [n for n in (ln.strip() for ln in text.splitlines()) if n and not n.startswith("#")]


# An embedded interpreter also needs its main(): embed_main.c is not in sources.txt.
RUNTIME_SOURCES = (*runtime_sources(), "embed_main.c")
EXPORTS = Path(__file__).parent / "exports"


def default_libpython(arch: str, version: str = "3.11") -> str:
    return f"/usr/lib/python{version}/config-{version}-{TRIPLETS[arch]}/libpython{version}.a"


def _lib_version(libpython: str) -> str:
    m = re.search(r"libpython(\d+\.\d+)", os.path.basename(libpython))
    if not m:
        raise CosmoextError(f"--libpython {libpython}: not a libpythonX.Y.a archive")
    return m.group(1)


def _header_version(include: str) -> str:
    text = Path(include, "patchlevel.h").read_text(errors="replace")
    m = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', text)
    if not m:
        raise CosmoextError(f"{include}/patchlevel.h: no PY_VERSION")
    return m.group(1)


def check_inputs(libpython: str, include: str) -> str:
    """Validate libpython and headers; return the full Python version."""
    majmin = _lib_version(libpython)
    if not os.path.isfile(libpython):
        raise CosmoextError(f"--libpython {libpython}: no such file; on Debian install it with: "
                            f"apt-get install libpython{majmin}-dev")
    with open(libpython, "rb") as f:
        data = f.read()
    if not data.startswith(b"!<arch>\n"):
        raise CosmoextError(f"--libpython {libpython}: not an ar archive")
    if not os.path.isfile(os.path.join(include, "Python.h")):
        raise CosmoextError(f"--python-include {include}: no Python.h there; on Debian install "
                            f"it with: apt-get install libpython{majmin}-dev")
    full = _header_version(include)
    if not full.startswith(majmin + ".") or full.encode() + b"\0" not in data:
        raise CosmoextError(f"--libpython {libpython} does not match the headers in {include} "
                            f"(headers are Python {full}); use the headers of the same build")
    return full


def builtin_modules(config_c: str) -> list[str]:
    """Names in the builtin-module table (config.c) of a CPython build."""
    return re.findall(r'\{"(\w+)",\s*\w+\}', Path(config_c).read_text())


def _module_libs(config_c: str, makefile: str | None) -> list[str]:
    """Link flags the builtin modules of config.c need (from the build's Makefile)."""
    names = builtin_modules(config_c)
    flags: list[str] = []
    if makefile and os.path.exists(makefile):
        text = Path(makefile).read_text(errors="replace")
        for name in names:
            m = re.search(rf"^MODULE_{name.upper()}_LDFLAGS=(.*)$", text, re.M)
            if m:
                flags += [f for f in m.group(1).split() if f.startswith("-l")]
    out = []
    for f in flags + ["-lm", "-lpthread", "-ldl", "-lutil"]:
        if f not in out:
            out.append(f)
    return out


def _package_zip(dest: str) -> bytes:
    """The pure-Python part of cosmoext, as a zip to append to the executable.

    Modules carry unchecked-hash .pyc files next to their source, so start-up
    does not compile them (the embedded interpreter has the same bytecode
    version as the one running this, or it would not have passed
    check_inputs)."""
    tmp = dest + ".zip"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        _zip_tree(z, Path(__file__).parent, Path("cosmoext"), os.path.dirname(dest),
                  PACKAGE_FILES)
    data = Path(tmp).read_bytes()
    os.unlink(tmp)
    return data


@dataclass
class _Build:
    """What linking the interpreter for one architecture takes."""

    arch: str
    cc: list[str]  # compiler and its target flags
    libpython: str
    include: str
    config_c: str
    link_libs: list[str]  # after libpython
    link_flags: list[str]
    gen_args: list[str]  # export-table sources beyond libpython
    defs: list[str] = field(default_factory=list)


def _gnu_build(s: Settings, arch: str) -> _Build:
    """Debian's libpython and glibc's libc.a (the stand-in for Cosmopolitan)."""
    tc = get_toolchain(s.toolchain, arch)
    cc = s.cc or tc.cc
    if shutil.which(cc) is None:
        raise ToolchainError(f"C compiler {cc} not found; install it with: apt-get install gcc"
                             if s.toolchain == "gnu" else f"C compiler {cc} not found")
    libpython = s.libpython or default_libpython(arch)
    include = s.python_include or f"/usr/include/python{_lib_version(libpython)}"

    def cc_file(name: str) -> str | None:
        out = subprocess.run([cc, *tc.target_flags, f"-print-file-name={name}"],
                             capture_output=True, text=True).stdout.strip()
        return out if os.path.isabs(out) and os.path.exists(out) else None

    libc = cc_file("libc.a")
    if libc is None:
        raise CosmoextError(f"{cc}: static libc.a not found; install it with: apt-get install "
                            "libc6-dev")
    gen = ["--libc-list", str(EXPORTS / "libc.txt")]
    for lib in (libc, cc_file("libm.a"), cc_file("libpthread.a")):
        if lib:
            gen += ["--libc-lib", lib]
    cross_nm = f"{TRIPLETS[arch]}-nm"  # plain nm reads other machines' ELF too
    if arch != host_arch() and shutil.which(cross_nm):
        gen += ["--nm", cross_nm]
    config_c = s.config_c or os.path.join(os.path.dirname(libpython), "config.c")
    makefile = os.path.join(os.path.dirname(libpython), "Makefile")
    return _Build(arch, [cc, *tc.target_flags], libpython, include, config_c,
                  _module_libs(config_c, makefile) if os.path.isfile(config_c) else [],
                  ["-static", "-no-pie"], gen,
                  [f'-DCX_STDLIB="{os.path.abspath(s.stdlib)}"'] if s.stdlib else [])


# Objects of libcosmo.a that are the interpreter's C++ ABI runtime and
# unwinder (libcxxabi, libunwind) and compiler/atomics helpers: images link
# libc++ (libcxx.a) themselves and import these, so every image shares one
# unwinder and one exception runtime.
COSMO_SHARED_MEMBERS = (r"(abort_message|cxa_[a-z_]+|fallback_malloc|private_typeinfo|"
                        r"stdlib_[a-z_]+|Unwind[A-Za-z0-9_-]+|libunwind|gcc_personality_v0|"
                        r"atomics)\.o")


# Compiler helpers (compiler-rt in libcosmo.a: __udivti3, __popcountdi2,
# __addtf3, __floattidf ...), which images call like libgcc's.
COMPILER_HELPERS = r"__[a-z][a-z0-9]*[0-9]|__(fix|float|extend|trunc)[a-z0-9]+"


def _cosmo_build(s: Settings, arch: str) -> _Build:
    """A Cosmopolitan CPython build (setting 'cosmo-python') and cosmocc."""
    from .pipeline import cosmo_python_dir

    tc = get_toolchain("cosmocc", arch, s.cosmocc)
    tc.check()
    lib = cosmo_python_dir(s, arch, "lib")
    libpython = s.libpython or next(
        (os.path.join(lib, n) for n in sorted(os.listdir(lib)) if re.fullmatch(
            r"libpython\d+\.\d+\.a", n)), os.path.join(lib, "libpython3.11.a"))
    inc = cosmo_python_dir(s, arch, "include")
    include = s.python_include or os.path.join(inc, f"python{_lib_version(libpython)}")
    config_c = s.config_c or os.path.join(cosmo_python_dir(s, arch, "Modules"), "config.c")
    root = tc.root or ""
    # The build's other static archives (libmpdec.a, libexpat.a) come along.
    others = [os.path.join(lib, n) for n in sorted(os.listdir(lib))
              if n.endswith(".a") and os.path.join(lib, n) != libpython]
    gen = ["--libc-list", str(EXPORTS / "libc.txt"), "--libc-list", str(EXPORTS / "cosmo.txt"),
           "--libc-lib", os.path.join(root, f"{arch}-linux-cosmo", "lib", "libcosmo.a"),
           "--nm", os.path.join(root, "bin", f"{arch}-linux-cosmo-nm"),
           "--member", COSMO_SHARED_MEMBERS, "--name-pattern", COMPILER_HELPERS, "--no-ifunc"]
    # The stdlib is in the executable's own zip (/zip/lib/pythonX.Y, where
    # getpath looks with this home): no environment needed.
    defs = ['-DCX_HOME="/zip"']
    return _Build(arch, [tc.cc], libpython, include, config_c, [*others, "-lm"], [], gen, defs)


def _link(s: Settings, b: _Build, tmp: str) -> str:
    """Export table, runtime, config.c, libpython -> one executable for b.arch."""
    version = check_inputs(b.libpython, b.include)
    if not os.path.isfile(b.config_c):
        raise CosmoextError(f"no builtin-module table {b.config_c}; give --config-c (the "
                            "config.c of the same CPython build)")
    rt = resources.files("cosmoext") / "runtime"
    d = os.path.join(tmp, b.arch)
    os.makedirs(d)
    print(f"[{b.arch} 1/3] export table from {os.path.basename(b.libpython)} "
          f"(Python {version}) and libc", flush=True)
    exports_c = os.path.join(d, "cx_exports.c")
    run_tool([sys.executable, str(EXPORTS / "gen_exports.py"), "--out", exports_c,
              "--python-lib", b.libpython, *b.gen_args], "export table generation", s.verbose)
    defs = ["-DCX_EMBEDDED=1", f"-DCX_STATIC_TLS_RESERVE={s.tls_reserve}", *b.defs]
    extra_srcs = []
    if "_contextvars" not in builtin_modules(b.config_c):  # Debian ships it as a .so
        defs.append("-DCX_ADD_CONTEXTVARS=1")
        extra_srcs.append(str(rt / "stdlib" / "contextvars_builtin.c"))
    base = [*b.cc, "-c", "-O2", "-fno-pie", "-fno-pic", f"-I{b.include}", f"-I{rt}", *defs]
    srcs = [str(rt / n) for n in RUNTIME_SOURCES] + extra_srcs + [exports_c, b.config_c]
    print(f"[{b.arch} 2/3] compile the runtime ({len(srcs)} files)", flush=True)
    objs = []
    for i, src in enumerate(srcs):
        obj = os.path.join(d, f"{i}-{os.path.basename(src)}.o")
        extra = ["-fno-builtin", "-w"] if src == exports_c else []
        run_tool([*base, *extra, src, "-o", obj], "compile", s.verbose)
        objs.append(obj)
    exe = os.path.join(d, "python")
    print(f"[{b.arch} 3/3] link ({' '.join(os.path.basename(x) for x in b.link_libs)})",
          flush=True)
    run_tool([*b.cc, *b.link_flags, "-o", exe, *objs, b.libpython, *b.link_libs,
              "-Wl,--wrap=dlopen"], "link", s.verbose)
    return exe


PACKAGE_FILES = (".py", ".ld", ".txt", ".pth")


def _zip_tree(z: zipfile.ZipFile, src: Path, arc: Path, tmp: str,
              only: tuple[str, ...] | None = None, pycache: bool = False) -> None:
    """Add ``src`` under ``arc``, each module with an unchecked-hash .pyc: a
    zip cannot take the .pyc files an import would write, and compiling at
    every start-up would cost more than the start-up itself.  The .pyc goes
    beside the module for zipimport, or into ``__pycache__`` (``pycache``)
    where the zip is a folder (Cosmopolitan's /zip)."""
    c = os.path.join(tmp, "x.pyc")
    for p in sorted(src.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts or (only and p.suffix not in only):
            continue
        name = arc / p.relative_to(src)
        z.write(p, str(name))
        if p.suffix == ".py":
            try:
                py_compile.compile(str(p), cfile=c, dfile=str(name), doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError:
                continue  # e.g. lib2to3's deliberately broken test data
            cached = (importlib.util.cache_from_source(str(name)) if pycache
                      else str(name.with_suffix(".pyc")))
            z.write(c, cached)


def _sysconfigdata(include: str, arch: str, majmin: str) -> tuple[str, str]:
    """The ``_sysconfigdata`` module the APE's sysconfig imports for ``arch``
    (the Cosmopolitan build ships none): its pyconfig.h, parsed the way
    CPython's own build does, and the names that follow from the build."""
    multiarch = TRIPLETS[arch]
    with open(os.path.join(include, "pyconfig.h")) as f:
        data: dict[str, Any] = sysconfig.parse_config_h(f)
    nodot = majmin.replace(".", "")
    soabi = f"cpython-{nodot}-{multiarch}"
    data.update(VERSION=majmin, py_version_nodot=nodot, ABIFLAGS="", SOABI=soabi,
                EXT_SUFFIX=f".{soabi}.so", SHLIB_SUFFIX=".so", MULTIARCH=multiarch,
                prefix="/zip", exec_prefix="/zip", LIBDEST=f"/zip/lib/python{majmin}",
                CC=f"{arch}-unknown-cosmo-cc", Py_ENABLE_SHARED=0)
    body = "# Made by cosmoext embed from the build's pyconfig.h.\nbuild_time_vars = "
    return f"_sysconfigdata__linux_{multiarch}.py", body + repr(dict(sorted(data.items()))) + "\n"


def embed(output: str, s: Settings) -> str:
    """Link the interpreter ``output``: with cosmocc a fat APE for every
    architecture of ``s``, its stdlib and the cosmoext package in its own zip;
    otherwise a static ELF for the one architecture of ``s``."""
    out = os.path.abspath(output)
    with tempfile.TemporaryDirectory(prefix="cosmoext-embed-") as tmp:
        if s.toolchain != "cosmocc":
            if len(s.arch) != 1:
                raise CosmoextError(f"setting 'arch': embed links one architecture with "
                                    f"toolchain {s.toolchain}, got {', '.join(s.arch)}")
            exe = _link(s, _gnu_build(s, s.arch[0]), tmp)
            print("append the cosmoext package", flush=True)
            with open(exe, "ab") as f:
                f.write(_package_zip(exe))
            return write_atomic(out, Path(exe).read_bytes(), mode=0o755)
        from .pipeline import cosmo_python_dir

        builds = [_cosmo_build(s, arch) for arch in s.arch]
        elves = [_link(s, b, tmp) for b in builds]
        root = get_toolchain("cosmocc", s.arch[0], s.cosmocc).root or ""
        bindir = os.path.join(root, "bin")
        exe = os.path.join(tmp, "python.com")
        loaders = [x for arch in s.arch for x in ("-l", os.path.join(bindir, f"ape-{arch}.elf"))]
        print(f"apelink: {', '.join(s.arch)} -> one APE", flush=True)
        # The macOS arm64 loader's source rides along when there is an aarch64 half.
        m1 = ["-M", os.path.join(bindir, "ape-m1.c")] if "aarch64" in s.arch else []
        run_tool([os.path.join(bindir, "apelink"), "-V", "-1", *loaders, *m1, "-o", exe, *elves],
                 "apelink", s.verbose)
        stdlib = s.stdlib or os.path.join(os.path.dirname(cosmo_python_dir(s, s.arch[0])), "Lib")
        if not os.path.isdir(stdlib):
            raise CosmoextError(f"setting 'stdlib': {stdlib} is not a directory")
        print(f"zip the standard library ({stdlib}) and the cosmoext package into it",
              flush=True)
        # Appending to the executable itself keeps the entries' offsets
        # absolute, which is how Cosmopolitan's /zip reads them.
        majmin = _lib_version(builds[0].libpython)
        with zipfile.ZipFile(exe, "a", zipfile.ZIP_DEFLATED) as z:
            lib = Path(f"lib/python{majmin}")
            _zip_tree(z, Path(stdlib), lib, tmp, pycache=True)
            _zip_tree(z, Path(__file__).parent, lib / "cosmoext", tmp, PACKAGE_FILES,
                      pycache=True)
            gen = Path(tmp, "sysconfigdata")
            gen.mkdir()
            for build in builds:
                name, text = _sysconfigdata(build.include, build.arch, majmin)
                (gen / name).write_text(text)
            _zip_tree(z, gen, lib, tmp, pycache=True)
        return write_atomic(out, Path(exe).read_bytes(), mode=0o755)
